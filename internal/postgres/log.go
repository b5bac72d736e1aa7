package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
	pb "github.com/paybound/paybound"
)

// The transparency log's layout (0005_log_bundles.sql). Several processes
// commit entries at once and any of them places the pending ones in the
// tree later (IntegrateLog), so an entry is known by its sequence number
// from its commit on, and by its index in the tree once placed.
//
// A commit's entries are stored in bundles, a row of log_bundles for at
// most pb.MaxBundleEntries entries or maxBundleBytes of them, in the C2SP
// entry-bundle encoding: a row an entry had cost every commit a heap tuple
// and four index entries per entry, and every integration an update of
// each. An entry's sequence number is its commit's number, taken from the
// log_commits sequence inside the commit's transaction, times
// 1<<commitShift, plus its position in the commit: a payment's later
// commit, which is version-checked against the earlier one, has the
// larger number, so integration keeps a payment's entries in order. A
// bundle's row is keyed by its first entry's number; integration sets its
// first, the index of its first entry in the tree (a row update per bundle,
// not per entry), and splits a bundle of which it places only a part.
//
// The tree's stored hashes are runs of at most maxRun consecutive ones, a
// row a run, instead of a row a hash.
//
// A payment's entries written with the payment are found through its row:
// payments.log_refs holds, for each commit that logged it, the numbers of
// its first and last entry in that commit. Any other entry has a row in
// log_subjects (another index entry per entry, which the payment path's
// entries are spared).
const (
	maxBundleBytes = 64 << 10
	// commitShift bounds the entries of one commit to 1<<20.
	commitShift = 20
	// maxRun bounds a run of stored hashes to 1 KiB, well under the 2 KiB
	// from which PostgreSQL would compress a row and move it out of line.
	maxRun = 32
)

// commitSeq is the number of the current commit's first entry, in SQL: it
// reads the log_commits value that queueLog's statement took earlier in
// the same pipeline, and so the same session.
const commitSeq = `currval('log_commits') * 1048576`

// logBundle is one bundle of a commit's entries: from position pos in the
// commit, n entries and their subjects, each after its 2-byte big-endian
// length.
type logBundle struct {
	pos               int64
	n                 int32
	entries, subjects []byte
}

// bundle packs recs, a commit's entries, into bundles.
func bundle(recs []pb.LogRecord) ([]logBundle, error) {
	var out []logBundle
	for i := range recs {
		body, subject := recs[i].Body, recs[i].Subject
		if len(body) > pb.MaxLogEntryBytes || len(subject) > 1<<16-1 {
			return nil, fmt.Errorf("couldn't store log entry %d of the batch: %d bytes about a subject of %d; at most %d and %d",
				i, len(body), len(subject), pb.MaxLogEntryBytes, 1<<16-1)
		}
		if n := len(out); n == 0 || out[n-1].n == pb.MaxBundleEntries || len(out[n-1].entries)+2+len(body) > maxBundleBytes {
			out = append(out, logBundle{pos: int64(i)})
		}
		b := &out[len(out)-1]
		b.entries = pb.AppendBundleItem(b.entries, body)
		b.subjects = pb.AppendBundleItem(b.subjects, []byte(subject))
		b.n++
	}
	return out, nil
}

// bundleRow splits a bundle's entries and subjects, n of each.
func bundleRow(n int32, entries, subjects []byte) (es, ss [][]byte, err error) {
	if es, err = pb.SplitBundle(entries, int(n)); err == nil {
		ss, err = pb.SplitBundle(subjects, int(n))
	}
	return es, ss, err
}

// logRange is the span of a batch's entries, from position lo to hi of
// b.Log, about one payment that the batch writes.
type logRange struct{ lo, hi int64 }

// paymentLogRanges returns the span of b's entries about each payment that
// b writes and logs: those entries are listed on the payment's row.
func paymentLogRanges(b *pb.Batch) map[string]logRange {
	if len(b.Log) == 0 || len(b.Payments) == 0 {
		return nil
	}
	out := make(map[string]logRange, len(b.Payments))
	for i := range b.Payments {
		out[b.Payments[i].ID] = logRange{lo: -1}
	}
	for i := range b.Log {
		if r, ok := out[b.Log[i].Subject]; ok {
			if r.lo < 0 {
				r.lo = int64(i)
			}
			r.hi = int64(i)
			out[b.Log[i].Subject] = r
		}
	}
	for id, r := range out {
		if r.lo < 0 {
			delete(out, id)
		}
	}
	return out
}

// logRefs returns the columns that list payment p's entries in the batch
// (paymentLogRanges), NULL when it has none.
func logRefs(onRow map[string]logRange, p *pb.Payment) (lo, hi *int64) {
	if r, ok := onRow[p.ID]; ok {
		return &r.lo, &r.hi
	}
	return nil, nil
}

// logRefsSQL appends a payment's entries in the batch, from the columns
// logRefs gave, to the list in its row (payments.log_refs).
const logRefsSQL = `CASE WHEN log_lo IS NULL THEN NULL::bigint[] ELSE ARRAY[` + commitSeq + ` + log_lo, ` + commitSeq + ` + log_hi] END`

// queueLog queues the statements that store b's entries, pending, and
// takes the commit's number; it must come before the batch's payments,
// which read that number (onRow is paymentLogRanges(b)).
func queueLog(q *pgx.Batch, b *pb.Batch, onRow map[string]logRange) error {
	if len(b.Log) == 0 {
		return nil
	}
	if len(b.Log) > 1<<commitShift {
		return fmt.Errorf("postgres: a batch of %d log entries; at most %d", len(b.Log), 1<<commitShift)
	}
	bundles, err := bundle(b.Log)
	if err != nil {
		return err
	}
	pos, n := make([]int64, len(bundles)), make([]int32, len(bundles))
	entries, subjects := make([][]byte, len(bundles)), make([][]byte, len(bundles))
	for i, b := range bundles {
		pos[i], n[i], entries[i], subjects[i] = b.pos, b.n, b.entries, b.subjects
	}
	// The sequence is read once: a CTE with a volatile function is
	// evaluated once, not inlined.
	q.Queue(`WITH c AS (SELECT nextval('log_commits') * 1048576 AS base)
		INSERT INTO log_bundles (seq, n, entries, subjects)
		SELECT c.base + x.pos, x.n, x.entries, x.subjects FROM c, unnest($1::bigint[], $2::int[], $3::bytea[], $4::bytea[]) AS x(pos, n, entries, subjects)`,
		pos, n, entries, subjects)
	var subj []string
	var at []int64
	for i := range b.Log {
		if _, ok := onRow[b.Log[i].Subject]; !ok {
			subj, at = append(subj, b.Log[i].Subject), append(at, int64(i))
		}
	}
	if len(subj) > 0 {
		q.Queue(`INSERT INTO log_subjects (subject, seq) SELECT s, `+commitSeq+` + p FROM unnest($1::text[], $2::bigint[]) AS x(s, p)`, subj, at)
	}
	return nil
}

// PendingLog returns stored entries that no integration has placed in the
// tree yet, in the order of their sequence numbers. It reads at most limit
// bundles, and from those only the bundles holding the first limit entries.
func (s *Store) PendingLog(ctx context.Context, limit int) ([]pb.PendingLogEntry, error) {
	limit = min(max(limit, 0), pb.MaxLogRead*10)
	if limit == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, n, entries FROM (
			SELECT seq, n, entries, sum(n) OVER (ORDER BY seq) - n AS before FROM (
				SELECT seq, n, entries FROM log_bundles WHERE first IS NULL ORDER BY seq LIMIT $1) r) p
		WHERE before < $1 ORDER BY seq`, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read pending log entries: %w", err)
	}
	defer rows.Close()
	var out []pb.PendingLogEntry
	for rows.Next() {
		var seq int64
		var n int32
		var b []byte
		if err := rows.Scan(&seq, &n, &b); err != nil {
			return nil, fmt.Errorf("couldn't read pending log entries: %w", err)
		}
		items, err := pb.SplitBundle(b, int(n))
		if err != nil {
			return nil, fmt.Errorf("couldn't read pending log entries from %d: %w", seq, err)
		}
		for k, body := range items[:min(len(items), limit-len(out))] {
			out = append(out, pb.PendingLogEntry{Seq: seq + int64(k), Body: body})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read pending log entries: %w", err)
	}
	return out, nil
}

// IntegrateLog moves the tree from in.OldSize to in.NewSize in one
// transaction. The state row is updated first: a concurrent integration
// from the same size waits on its lock and then finds the size changed.
// in.Seqs must be what PendingLog returned, or a prefix of it: whole
// bundles, and a first part of the last one, which is then split.
func (s *Store) IntegrateLog(ctx context.Context, in *pb.LogIntegration) error {
	if in.NewSize != in.OldSize+int64(len(in.Seqs)) {
		return fmt.Errorf("postgres: integration of %d entries from size %d cannot reach size %d", len(in.Seqs), in.OldSize, in.NewSize)
	}
	runFirst, runs, err := hashRuns(in.Hashes)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE log_state SET size = $1, root = $2 WHERE size = $3`, in.NewSize, in.Root[:], in.OldSize)
		if err != nil {
			return fmt.Errorf("couldn't update the log's state: %w", conflict(err))
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%w: the log no longer has %d entries", pb.ErrStoreConflict, in.OldSize)
		}
		if len(in.Seqs) > 0 {
			if err := place(ctx, tx, in.OldSize, in.Seqs); err != nil {
				return err
			}
		}
		if len(runs) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO log_hash_runs (first, hashes) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, runFirst, runs); err != nil {
				return fmt.Errorf("couldn't store the log's hashes: %w", conflict(err))
			}
		}
		return nil
	})
}

// place gives the pending entries seqs the indexes from size on, inside
// IntegrateLog's transaction.
func place(ctx context.Context, tx pgx.Tx, size int64, seqs []int64) error {
	rows, err := tx.Query(ctx, `SELECT seq, n FROM log_bundles WHERE first IS NULL AND seq BETWEEN $1 AND $2 ORDER BY seq`,
		seqs[0], seqs[len(seqs)-1])
	if err != nil {
		return fmt.Errorf("couldn't read pending log bundles: %w", err)
	}
	type pending struct {
		seq int64
		n   int32
	}
	var found []pending
	var p pending
	if _, err := pgx.ForEachRow(rows, []any{&p.seq, &p.n}, func() error {
		found = append(found, p)
		return nil
	}); err != nil {
		return fmt.Errorf("couldn't read pending log bundles: %w", err)
	}
	// Match seqs to whole bundles, but for a first part of the last. A
	// bundle between them that seqs skip committed after they were read.
	var keys, firsts []int64
	var split pending // the bundle placed in part, and how much of it
	i := 0
	for _, b := range found {
		if i == len(seqs) {
			break
		}
		if b.seq < seqs[i] && seqs[i] < b.seq+int64(b.n) {
			return fmt.Errorf("%w: log entry %d is no longer the start of a pending bundle", pb.ErrStoreConflict, seqs[i])
		}
		if b.seq != seqs[i] {
			continue
		}
		m := min(int(b.n), len(seqs)-i)
		for k := range m {
			if seqs[i+k] != b.seq+int64(k) {
				return fmt.Errorf("%w: log entry %d is not pending", pb.ErrStoreConflict, seqs[i+k])
			}
		}
		if m < int(b.n) {
			split = pending{seq: b.seq, n: int32(m)}
		} else {
			keys, firsts = append(keys, b.seq), append(firsts, size+int64(i))
		}
		i += m
	}
	if i != len(seqs) {
		return fmt.Errorf("%w: log entry %d is not pending", pb.ErrStoreConflict, seqs[i])
	}
	if len(keys) > 0 {
		tag, err := tx.Exec(ctx, `UPDATE log_bundles b SET first = d.first FROM unnest($1::bigint[], $2::bigint[]) AS d(seq, first)
			WHERE b.seq = d.seq AND b.first IS NULL`, keys, firsts)
		if err != nil {
			return fmt.Errorf("couldn't place log entries: %w", conflict(err))
		}
		if tag.RowsAffected() != int64(len(keys)) {
			return fmt.Errorf("%w: some log entries were placed already", pb.ErrStoreConflict)
		}
	}
	if split.n > 0 {
		return splitBundle(ctx, tx, split.seq, int(split.n), size+int64(len(seqs))-int64(split.n))
	}
	return nil
}

// splitBundle places the first m entries of pending bundle seq at index
// first, and leaves the rest pending as a bundle of their own, keyed by the
// sequence number of its first entry.
func splitBundle(ctx context.Context, tx pgx.Tx, seq int64, m int, first int64) error {
	var n int32
	var entries, subjects []byte
	if err := tx.QueryRow(ctx, `SELECT n, entries, subjects FROM log_bundles WHERE seq = $1 AND first IS NULL`, seq).Scan(&n, &entries, &subjects); err != nil {
		return fmt.Errorf("couldn't read pending log bundle %d: %w", seq, err)
	}
	es, ss, err := bundleRow(n, entries, subjects)
	if err != nil {
		return fmt.Errorf("couldn't read pending log bundle %d: %w", seq, err)
	}
	join := func(items [][]byte) []byte {
		var b []byte
		for _, it := range items {
			b = pb.AppendBundleItem(b, it)
		}
		return b
	}
	if _, err := tx.Exec(ctx, `UPDATE log_bundles SET first = $2, n = $3, entries = $4, subjects = $5 WHERE seq = $1`,
		seq, first, m, join(es[:m]), join(ss[:m])); err != nil {
		return fmt.Errorf("couldn't place log entries: %w", conflict(err))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO log_bundles (seq, n, entries, subjects) VALUES ($1, $2, $3, $4)`,
		seq+int64(m), int(n)-m, join(es[m:]), join(ss[m:])); err != nil {
		return fmt.Errorf("couldn't place log entries: %w", conflict(err))
	}
	return nil
}

// hashRuns groups hashes, in order, into runs of at most maxRun
// consecutive ids: their first ids and their hashes, 32 bytes each.
func hashRuns(hashes []pb.LogHash) (first []int64, runs [][]byte, err error) {
	for i, h := range hashes {
		n := len(runs)
		if n == 0 || h.ID != hashes[i-1].ID+1 || len(runs[n-1]) == maxRun*len(h.Hash) {
			if i > 0 && h.ID <= hashes[i-1].ID {
				return nil, nil, fmt.Errorf("postgres: stored hash %d after %d: hashes must come in increasing order", h.ID, hashes[i-1].ID)
			}
			first, runs = append(first, h.ID), append(runs, make([]byte, 0, min(maxRun, len(hashes)-i)*len(h.Hash)))
			n++
		}
		runs[n-1] = append(runs[n-1], h.Hash[:]...)
	}
	return first, runs, nil
}

func (s *Store) LogState(ctx context.Context) (size int64, root [32]byte, err error) {
	var b []byte
	if err := s.pool.QueryRow(ctx, `SELECT size, root FROM log_state`).Scan(&size, &b); err != nil {
		return 0, root, fmt.Errorf("couldn't read the log's state: %w", err)
	}
	copy(root[:], b)
	return size, root, nil
}

// maxHashRead bounds the hashes one LogHashes call reads.
const maxHashRead = 1024

// LogHashes reads each hash from the run that holds it: the run with the
// greatest first id not above it, if that run reaches it.
func (s *Store) LogHashes(ctx context.Context, ids []int64) ([][32]byte, error) {
	if len(ids) > maxHashRead {
		return nil, fmt.Errorf("postgres: %d stored hashes asked at once; at most %d", len(ids), maxHashRead)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT i.id, (SELECT CASE WHEN i.id - r.first < length(r.hashes) / 32
			THEN substring(r.hashes FROM ((i.id - r.first) * 32 + 1)::int FOR 32) END
			FROM log_hash_runs r WHERE r.first <= i.id ORDER BY r.first DESC LIMIT 1)
		FROM unnest($1::bigint[]) AS i(id)`, ids)
	if err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	got := make(map[int64][32]byte, len(ids))
	var id int64
	var b []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &b}, func() error {
		if len(b) == 0 {
			return nil // not stored
		}
		var h [32]byte
		if len(b) != len(h) {
			return fmt.Errorf("stored hash %d has %d bytes", id, len(b))
		}
		copy(h[:], b)
		got[id] = h
		return nil
	}); err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	return pb.HashesInOrder(ids, got)
}

// LogEntries reads the placed bundles that hold entries from up to from+n.
func (s *Store) LogEntries(ctx context.Context, from int64, n int) ([]pb.LogEntry, error) {
	n = min(max(n, 0), pb.MaxLogRead)
	from = max(from, 0)
	if n == 0 {
		return nil, nil
	}
	end := from + int64(n)
	if end < from {
		end = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, `SELECT first, n, entries, subjects FROM log_bundles
		WHERE first >= (SELECT max(first) FROM log_bundles WHERE first <= $1) AND first < $2 ORDER BY first`, from, end)
	if err != nil {
		return nil, fmt.Errorf("couldn't read log entries: %w", err)
	}
	var out []pb.LogEntry
	err = scanBundles(rows, func(first int64, es, ss [][]byte) {
		for k := range es {
			if idx := first + int64(k); idx >= from && len(out) < n {
				out = append(out, pb.LogEntry{Index: idx, Subject: string(ss[k]), Body: es[k]})
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read log entries: %w", err)
	}
	return out, nil
}

// scanBundles calls fn with the entries and subjects of each placed bundle
// that rows (first, n, entries, subjects) hold.
func scanBundles(rows pgx.Rows, fn func(first int64, entries, subjects [][]byte)) error {
	defer rows.Close()
	for rows.Next() {
		var first int64
		var n int32
		var entries, subjects []byte
		if err := rows.Scan(&first, &n, &entries, &subjects); err != nil {
			return err
		}
		es, ss, err := bundleRow(n, entries, subjects)
		if err != nil {
			return fmt.Errorf("bundle from %d: %w", first, err)
		}
		fn(first, es, ss)
	}
	return rows.Err()
}

// SubjectLog reads, in one statement (one snapshot), the placed bundles
// that hold a subject's entries: those a payment's row lists
// (payments.log_refs), and those of its first limit rows of log_subjects,
// by sequence number. The spans are merged per commit, so that no bundle
// is read twice. Past limit entries, the first by sequence number are
// read, which integration places in that order but for commits that landed
// late.
func (s *Store) SubjectLog(ctx context.Context, subject string, limit int) ([]pb.LogEntry, error) {
	limit = min(max(limit, 0), pb.MaxLogRead)
	if limit == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `WITH r AS (
			SELECT p.log_refs[i] AS lo, p.log_refs[i + 1] AS hi
			FROM payments p, generate_series(1, array_length(p.log_refs, 1), 2) AS i WHERE p.id = $1
			UNION ALL
			(SELECT seq, seq FROM log_subjects WHERE subject = $1 ORDER BY seq LIMIT $2)),
		c AS (SELECT min(lo) AS lo, max(hi) AS hi FROM r GROUP BY lo / 1048576)
		SELECT b.first, b.n, b.entries, b.subjects FROM c JOIN log_bundles b
			ON b.seq >= (SELECT max(seq) FROM log_bundles WHERE seq <= c.lo) AND b.seq <= c.hi
		WHERE b.first IS NOT NULL`, subject, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
	}
	var out []pb.LogEntry
	err = scanBundles(rows, func(first int64, es, ss [][]byte) {
		for k := range es {
			if string(ss[k]) == subject {
				out = append(out, pb.LogEntry{Index: first + int64(k), Subject: subject, Body: es[k]})
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log entries of %s: %w", subject, err)
	}
	slices.SortFunc(out, func(a, b pb.LogEntry) int { return cmp.Compare(a.Index, b.Index) })
	return out[:min(len(out), limit)], nil
}

func (s *Store) ClaimLogKey(ctx context.Context, vkey string) (string, error) {
	// Two statements: a process that waited on another's claim must read
	// the claimed key after it, not in the snapshot its UPDATE started with.
	var got string
	err := s.pool.QueryRow(ctx, `UPDATE log_state SET vkey = $1 WHERE vkey = '' RETURNING vkey`, vkey).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, `SELECT vkey FROM log_state`).Scan(&got)
	}
	if err != nil {
		return "", fmt.Errorf("couldn't record the log key: %w", err)
	}
	return got, nil
}
