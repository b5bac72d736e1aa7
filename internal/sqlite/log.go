package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
	"github.com/paybound/paybound/internal/tlog"
)

// The log's tables (0005_log_bundles.sql): bundles of entries, the
// subjects of entries not listed on a payment's row, and runs of the
// tree's stored hashes.
var (
	tLogBundles  = sqlstore.NewTable("log_bundles", "first, size, entries, subjects, root", "")
	tLogSubjects = sqlstore.NewTable("log_subjects", "subject, idx", "")
	tLogHashRuns = sqlstore.NewTable("log_hash_runs", "first, hashes", "")
)

// logTree is the writer's view of the transparency log's tree: SQLite has
// one writer, so a batch's entries enter the tree in the transaction that
// stores them, and the tree's size is always the number of entries.
// Only Commit (one goroutine) uses it.
type logTree struct {
	loaded bool
	size   int64
	// cache holds the tree's frontier (tlog.Frontier), the only stored
	// hashes appending reads: a few dozen, so that a commit neither reads
	// them from the file nor keeps a large map up.
	cache map[int64]tlog.Hash
}

// logAppend is what a committed batch changed in the tree.
type logAppend struct {
	size   int64
	first  int64
	hashes []tlog.Hash
}

// loadLog reads the tree's size into the writer's view, once after
// opening and after a failed commit, inside the writer's transaction.
func (s *Store) loadLog(ctx context.Context) error {
	if s.log.loaded {
		return nil
	}
	size, _, err := logState(s.w.QueryRowContext(ctx, lastEntry))
	if err != nil {
		return err
	}
	s.log = logTree{loaded: true, size: size, cache: map[int64]tlog.Hash{}}
	return nil
}

// paymentEntries returns, for each payment b writes, the indexes that its
// entries in b take in the tree (8 bytes each, big-endian), as lists[i]
// for the payment's last write b.Payments[i] (nil for the others), and the
// set of those payments. The lists are appended to the payments' rows
// (payments.log_idx) instead of being rows of log_subjects, which would
// cost the writer a B-tree insert per entry. Entries of a payment that b
// does not write go to log_subjects.
func paymentEntries(size int64, b *pb.Batch) (lists [][]byte, onRow map[string]int) {
	lists = make([][]byte, len(b.Payments))
	if len(b.Log) == 0 {
		return lists, nil
	}
	onRow = make(map[string]int, len(b.Payments)) // ID -> its last write
	for i := range b.Payments {
		onRow[b.Payments[i].ID] = i
	}
	for i := range b.Log {
		if k, ok := onRow[b.Log[i].Subject]; ok {
			lists[k] = binary.BigEndian.AppendUint64(lists[k], uint64(size+int64(i)))
		}
	}
	return lists, onRow
}

// appendLog stores recs as the next entries of the tree, inside the
// writer's open transaction, and returns the change to apply to the
// writer's view once the transaction commits. The writer's view is loaded
// (loadLog); the subjects in onRow are payments whose rows list their
// entries (paymentEntries).
// packing is recs' bundles, as pack makes them.
func (s *Store) appendLog(ctx context.Context, recs []pb.LogRecord, packing <-chan packed, onRow map[string]int) (*logAppend, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	t := &s.log
	leaves := make([]tlog.Hash, len(recs))
	for i := range recs {
		leaves[i] = recs[i].Leaf
		if leaves[i] == (tlog.Hash{}) { // a record made by hand
			leaves[i] = pb.LeafHash(recs[i].Body)
		}
	}
	first, hashes, root, err := tlog.Append(t.size, leaves, s.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("couldn't append to the log: %w", err)
	}
	pk := <-packing
	if pk.err != nil {
		return nil, pk.err
	}
	bundles := pk.bundles
	for i := range bundles {
		bundles[i].first += t.size
		bundles[i].size += t.size
	}
	if err := s.insert(ctx, part{tLogBundles, len(bundles), func(d []any, i int) ([]any, error) {
		b := &bundles[i]
		var r any
		if i == len(bundles)-1 {
			r = root[:]
		}
		return append(d, b.first, b.size, b.entries, b.subjects, r), nil
	}}); err != nil {
		return nil, err
	}
	var other []int
	for i := range recs {
		if _, ok := onRow[recs[i].Subject]; !ok {
			other = append(other, i)
		}
	}
	if err := s.insert(ctx, part{tLogSubjects, len(other), func(d []any, i int) ([]any, error) {
		return append(d, recs[other[i]].Subject, t.size+int64(other[i])), nil
	}}); err != nil {
		return nil, err
	}
	// The hashes a commit adds have consecutive ids: they are stored as
	// runs, a row per maxRun hashes rather than a row each.
	runs := (len(hashes) + maxRun - 1) / maxRun
	if err := s.insert(ctx, part{tLogHashRuns, runs, func(d []any, i int) ([]any, error) {
		run := hashes[i*maxRun : min(len(hashes), (i+1)*maxRun)]
		b := make([]byte, 0, len(run)*len(tlog.Hash{}))
		for _, h := range run {
			b = append(b, h[:]...)
		}
		return append(d, first+int64(i*maxRun), b), nil
	}}); err != nil {
		return nil, err
	}
	return &logAppend{size: t.size + int64(len(recs)), first: first, hashes: hashes}, nil
}

// hashReader reads the stored hashes appending needs: from the writer's
// cache of the frontier, else inside the writer's open transaction, and
// caches what it read.
func (s *Store) hashReader(ctx context.Context) tlog.HashReaderFunc {
	t := &s.log
	return func(ids []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ids))
		var miss []int64
		for i, id := range ids {
			h, ok := t.cache[id]
			if !ok {
				miss = append(miss, id)
			}
			out[i] = h
		}
		if len(miss) == 0 {
			return out, nil
		}
		got, err := storedHashes(miss, func(query string, args ...any) (*sql.Rows, error) {
			return s.w.QueryContext(ctx, query, args...)
		})
		if err != nil {
			return nil, err
		}
		for i, id := range ids {
			if h, ok := got[id]; ok {
				out[i], t.cache[id] = h, h
			} else if _, cached := t.cache[id]; !cached {
				return nil, fmt.Errorf("couldn't read stored hash %d: not stored", id)
			}
		}
		return out, nil
	}
}

// applied moves the writer's view of the tree past a committed append.
func (t *logTree) applied(a *logAppend) {
	if a == nil {
		return
	}
	front := tlog.Frontier(a.size)
	cache := make(map[int64]tlog.Hash, len(front))
	for _, id := range front {
		if id >= a.first && id-a.first < int64(len(a.hashes)) {
			cache[id] = a.hashes[id-a.first]
		} else if h, ok := t.cache[id]; ok {
			cache[id] = h
		}
	}
	t.cache = cache
	t.size = a.size
}

// PendingLog returns nothing: SQLite entries enter the tree as they commit.
func (s *Store) PendingLog(ctx context.Context, limit int) ([]pb.PendingLogEntry, error) {
	return nil, nil
}

// IntegrateLog refuses: with SQLite there is never anything to integrate.
func (s *Store) IntegrateLog(ctx context.Context, in *pb.LogIntegration) error {
	return errors.New("sqlite: log entries enter the tree at commit; there is nothing to integrate")
}

// lastEntry selects the log's last bundle, which holds the tree's root.
const lastEntry = `SELECT size, root FROM log_bundles ORDER BY first DESC LIMIT 1`

// logState reads the tree's size and root from the last bundle's row.
func logState(r *sql.Row) (size int64, root [32]byte, err error) {
	var b []byte
	switch err := r.Scan(&size, &b); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, tlog.EmptyRoot, nil
	case err != nil:
		return 0, root, fmt.Errorf("couldn't read the log's state: %w", err)
	case len(b) != len(root):
		return 0, root, fmt.Errorf("couldn't read the log's state: the last bundle, to size %d, has no root", size)
	}
	copy(root[:], b)
	return size, root, nil
}

func (s *Store) LogState(ctx context.Context) (size int64, root [32]byte, err error) {
	return logState(s.row(ctx, lastEntry))
}

// maxHashRead bounds the hashes one LogHashes call reads (a proof needs
// about two per level of the tree).
const maxHashRead = 1024

func (s *Store) LogHashes(ctx context.Context, ids []int64) ([][32]byte, error) {
	if len(ids) > maxHashRead {
		return nil, fmt.Errorf("sqlite: %d stored hashes asked at once; at most %d", len(ids), maxHashRead)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	got, err := storedHashes(ids, func(query string, args ...any) (*sql.Rows, error) {
		st, err := s.prepared(ctx, query)
		if err != nil {
			return nil, err
		}
		return st.QueryContext(ctx, args...)
	})
	if err != nil {
		return nil, err
	}
	return pb.HashesInOrder(ids, got)
}

// maxRun bounds the hashes of one row of log_hash_runs: 2 KiB, which a
// 4 KiB page holds without an overflow page, so that reading one hash reads
// one page. A commit of about 30 entries adds one row.
const maxRun = 64

// hashesQuery reads the stored hashes whose ids are listed, as a JSON
// array, in ?1 (so that the statement's text, and so its preparation, is
// one whatever the number of ids), each from the run that holds it.
// A hash past its run's end reads as empty: not stored.
const hashesQuery = `SELECT j.value, (SELECT substr(hashes, (j.value - first) * 32 + 1, 32) FROM log_hash_runs
	WHERE first <= j.value ORDER BY first DESC LIMIT 1) FROM json_each(?1) j`

// entriesQuery reads the bundles that hold the entries listed, as a JSON
// array, in ?1.
const entriesQuery = `SELECT j.value, b.entries, b.first, b.size FROM json_each(?1) j
	JOIN log_bundles b ON b.first = (SELECT max(first) FROM log_bundles WHERE first <= j.value)
	WHERE j.value < b.size ORDER BY j.value`

// scanEntries calls fn with each entry that rows of entriesQuery hold. The
// rows come in index order, so the entries of one bundle are consecutive
// and the bundle is inflated once for them.
func scanEntries(rows *sql.Rows, fn func(idx int64, body []byte)) error {
	defer rows.Close()
	var entries [][]byte
	last := int64(-1)
	for rows.Next() {
		var idx, first, size int64
		var b []byte
		if err := rows.Scan(&idx, &b, &first, &size); err != nil {
			return err
		}
		if first != last {
			var err error
			if entries, err = unbundle(b, int(size-first)); err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
			last = first
		}
		fn(idx, entries[idx-first])
	}
	return rows.Err()
}

// jsonList encodes xs as a JSON array.
func jsonList(xs []int64) string {
	b := []byte{'['}
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return string(append(b, ']'))
}

// storedHashes reads the stored hashes ids (at most maxHashRead), running
// hashesQuery and entriesQuery with run: from their runs, and a leaf hash
// in none (an entry appended before schema 5, when leaf hashes were not
// stored) by hashing its entry. An id not stored is missing from the map.
func storedHashes(ids []int64, run func(query string, args ...any) (*sql.Rows, error)) (map[int64][32]byte, error) {
	got := make(map[int64][32]byte, len(ids))
	rows, err := run(hashesQuery, jsonList(ids))
	if err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
		}
		var h [32]byte
		if len(b) == 0 {
			continue // not stored
		}
		if len(b) != len(h) {
			return nil, fmt.Errorf("couldn't read stored hash %d: %d bytes", id, len(b))
		}
		copy(h[:], b)
		got[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	var leaves []int64
	leafID := map[int64]int64{} // entry index -> stored hash id
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			if level, n := tlog.SplitStoredHashIndex(id); level == 0 {
				leaves = append(leaves, n)
				leafID[n] = id
			}
		}
	}
	if len(leaves) == 0 {
		return got, nil
	}
	erows, err := run(entriesQuery, jsonList(leaves))
	if err == nil {
		err = scanEntries(erows, func(idx int64, body []byte) { got[leafID[idx]] = pb.LeafHash(body) })
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	return got, nil
}

func (s *Store) LogEntries(ctx context.Context, from int64, n int) ([]pb.LogEntry, error) {
	n = min(max(n, 0), pb.MaxLogRead)
	if n == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT first, size, entries, subjects FROM log_bundles
		WHERE first >= (SELECT COALESCE(max(first), 0) FROM log_bundles WHERE first <= ?) ORDER BY first`, from)
	if err != nil {
		return nil, fmt.Errorf("couldn't read log entries: %w", err)
	}
	defer rows.Close()
	var out []pb.LogEntry
	for len(out) < n && rows.Next() {
		var first, size int64
		var entries, subjects []byte
		if err := rows.Scan(&first, &size, &entries, &subjects); err != nil {
			return nil, fmt.Errorf("couldn't read log entries: %w", err)
		}
		es, err := unbundle(entries, int(size-first))
		if err != nil {
			return nil, fmt.Errorf("couldn't read log entries from %d: %w", first, err)
		}
		ss, err := unbundle(subjects, int(size-first))
		if err != nil {
			return nil, fmt.Errorf("couldn't read log entries from %d: %w", first, err)
		}
		for k := range es {
			if idx := first + int64(k); idx >= from && len(out) < n {
				out = append(out, pb.LogEntry{Index: idx, Subject: string(ss[k]), Body: es[k]})
			}
		}
	}
	return out, rows.Err()
}

// SubjectLog reads a payment's entries from the list on its row and, for
// entries written without the payment (or before schema 5), from
// log_subjects; any other subject's from log_subjects.
func (s *Store) SubjectLog(ctx context.Context, subject string, limit int) ([]pb.LogEntry, error) {
	limit = min(max(limit, 0), pb.MaxLogRead)
	// One read transaction, so that the three reads see the same commits: a
	// commit between them could otherwise leave a gap in the list.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
	}
	defer tx.Rollback()
	var packed []byte
	if err := tx.QueryRowContext(ctx, `SELECT log_idx FROM payments WHERE id = ?`, subject).Scan(&packed); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
	}
	if len(packed)%8 != 0 {
		return nil, fmt.Errorf("couldn't read the log entries of %s: a list of %d bytes", subject, len(packed))
	}
	idxs := make([]int64, 0, len(packed)/8)
	for i := 0; i < len(packed); i += 8 {
		idxs = append(idxs, int64(binary.BigEndian.Uint64(packed[i:])))
	}
	rows, err := tx.QueryContext(ctx, `SELECT idx FROM log_subjects WHERE subject = ? ORDER BY idx LIMIT ?`, subject, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
		}
		idxs = append(idxs, idx)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
	}
	rows.Close()
	slices.Sort(idxs)
	idxs = idxs[:min(len(idxs), limit)]
	if len(idxs) == 0 {
		return nil, nil
	}
	out := make([]pb.LogEntry, 0, len(idxs))
	erows, err := tx.QueryContext(ctx, entriesQuery, jsonList(idxs))
	if err == nil {
		err = scanEntries(erows, func(idx int64, body []byte) {
			out = append(out, pb.LogEntry{Index: idx, Subject: subject, Body: body})
		})
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
	}
	if len(out) != len(idxs) {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %d of %d listed are stored", subject, len(out), len(idxs))
	}
	return out, nil
}

func (s *Store) ClaimLogKey(ctx context.Context, vkey string) (string, error) {
	if _, err := s.db.ExecContext(ctx, `UPDATE log_state SET vkey = ? WHERE vkey = ''`, vkey); err != nil {
		return "", fmt.Errorf("couldn't record the log key: %w", err)
	}
	var got string
	if err := s.row(ctx, `SELECT vkey FROM log_state`).Scan(&got); err != nil {
		return "", fmt.Errorf("couldn't read the log key: %w", err)
	}
	return got, nil
}
