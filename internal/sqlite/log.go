package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/tlog"
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

// appendLog stores recs as the next entries of the tree, inside the
// writer's open transaction, and returns the change to apply to the
// writer's view once the transaction commits.
func (s *Store) appendLog(ctx context.Context, recs []pb.LogRecord) (*logAppend, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	t := &s.log
	if !t.loaded {
		size, _, err := logState(s.w.QueryRowContext(ctx, lastEntry))
		if err != nil {
			return nil, err
		}
		t.size = size
		t.cache, t.loaded = map[int64]tlog.Hash{}, true
	}
	leaves := make([]tlog.Hash, len(recs))
	for i := range recs {
		leaves[i] = recs[i].Leaf
		if leaves[i] == (tlog.Hash{}) { // a record made by hand
			leaves[i] = pb.LeafHash(recs[i].Body)
		}
	}
	read := tlog.HashReaderFunc(func(ids []int64) ([]tlog.Hash, error) {
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
		got, err := storedHashes(miss, func(args ...any) (*sql.Rows, error) {
			return s.w.QueryContext(ctx, hashesQuery, args...)
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
	})
	first, hashes, root, err := tlog.Append(t.size, leaves, read)
	if err != nil {
		return nil, fmt.Errorf("couldn't append to the log: %w", err)
	}
	if err := s.insert(ctx, &tLogEntries, len(recs), func(d []any, i int) []any {
		var r any
		if i == len(recs)-1 {
			r = root[:]
		}
		return append(d, t.size+int64(i), recs[i].Subject, recs[i].Body, r)
	}); err != nil {
		return nil, err
	}
	// Leaf hashes are not stored: each is its entry's, and storing it would
	// cost a row per entry on the commit path for the one leaf hash a proof
	// reads.
	interior := make([]int64, 0, len(hashes))
	for i := range hashes {
		if level, _ := tlog.SplitStoredHashIndex(first + int64(i)); level > 0 {
			interior = append(interior, int64(i))
		}
	}
	if err := s.insert(ctx, &tLogHashes, len(interior), func(d []any, i int) []any {
		k := interior[i]
		return append(d, first+k, hashes[k][:])
	}); err != nil {
		return nil, err
	}
	return &logAppend{size: t.size + int64(len(recs)), first: first, hashes: hashes}, nil
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

// lastEntry selects the log's last entry, which holds the tree's root.
const lastEntry = `SELECT idx, root FROM log_entries ORDER BY idx DESC LIMIT 1`

// logState reads the tree's size and root from the last entry's row.
func logState(r *sql.Row) (size int64, root [32]byte, err error) {
	var idx int64
	var b []byte
	switch err := r.Scan(&idx, &b); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, tlog.EmptyRoot, nil
	case err != nil:
		return 0, root, fmt.Errorf("couldn't read the log's state: %w", err)
	case len(b) != len(root):
		return 0, root, fmt.Errorf("couldn't read the log's state: entry %d, the last, has no root", idx)
	}
	copy(root[:], b)
	return idx + 1, root, nil
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
	st, err := s.prepared(ctx, hashesQuery)
	if err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	got, err := storedHashes(ids, func(args ...any) (*sql.Rows, error) { return st.QueryContext(ctx, args...) })
	if err != nil {
		return nil, err
	}
	return pb.HashesInOrder(ids, got)
}

// hashesQuery reads stored hashes: interior hashes from log_hashes, leaf
// hashes as their entries (returned with id -1-index), the ids as JSON
// arrays so that the statement's text, and so its preparation, is one
// whatever the number of ids.
const hashesQuery = `SELECT id, hash FROM log_hashes WHERE id IN (SELECT value FROM json_each(?1))
	UNION ALL SELECT -1 - idx, body FROM log_entries WHERE idx IN (SELECT value FROM json_each(?2))`

// storedHashes reads the stored hashes ids (at most maxHashRead) with
// hashesQuery run by query: leaf hashes by hashing their entries. An id
// not stored is missing from the map.
func storedHashes(ids []int64, query func(args ...any) (*sql.Rows, error)) (map[int64][32]byte, error) {
	interior, leaves := []byte{'['}, []byte{'['}
	leafID := map[int64]int64{} // entry index -> stored hash id
	for _, id := range ids {
		if level, n := tlog.SplitStoredHashIndex(id); level == 0 {
			leaves = strconv.AppendInt(append(leaves, ','), n, 10)
			leafID[n] = id
		} else {
			interior = strconv.AppendInt(append(interior, ','), id, 10)
		}
	}
	list := func(b []byte) string {
		if len(b) > 1 {
			b[1] = ' ' // the first element's comma
		}
		return string(append(b, ']'))
	}
	rows, err := query(list(interior), list(leaves))
	if err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	defer rows.Close()
	got := make(map[int64][32]byte, len(ids))
	for rows.Next() {
		var id int64
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
		}
		if id < 0 {
			got[leafID[-1-id]] = pb.LeafHash(b)
			continue
		}
		var h [32]byte
		copy(h[:], b)
		got[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	return got, nil
}

func (s *Store) LogEntries(ctx context.Context, from int64, n int) ([]pb.LogEntry, error) {
	n = min(max(n, 0), pb.MaxLogRead)
	return s.logEntries(ctx, `SELECT idx, subject, body FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?`, from, n)
}

func (s *Store) SubjectLog(ctx context.Context, subject string, limit int) ([]pb.LogEntry, error) {
	limit = min(max(limit, 0), pb.MaxLogRead)
	return s.logEntries(ctx, `SELECT idx, subject, body FROM log_entries WHERE subject = ? ORDER BY idx LIMIT ?`, subject, limit)
}

func (s *Store) logEntries(ctx context.Context, q string, args ...any) ([]pb.LogEntry, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read log entries: %w", err)
	}
	defer rows.Close()
	var out []pb.LogEntry
	for rows.Next() {
		var e pb.LogEntry
		if err := rows.Scan(&e.Index, &e.Subject, &e.Body); err != nil {
			return nil, fmt.Errorf("couldn't read log entries: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
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
