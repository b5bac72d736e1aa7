package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	pb "github.com/paybound/paybound"
)

// PendingLog returns stored entries that no integration has placed in the
// tree yet, in insertion order.
func (s *Store) PendingLog(ctx context.Context, limit int) ([]pb.PendingLogEntry, error) {
	limit = min(max(limit, 0), pb.MaxLogRead*10)
	rows, err := s.pool.Query(ctx, `SELECT seq, body FROM log_entries WHERE idx IS NULL ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read pending log entries: %w", err)
	}
	var out []pb.PendingLogEntry
	var e pb.PendingLogEntry
	_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.Body}, func() error {
		out = append(out, pb.PendingLogEntry{Seq: e.Seq, Body: bytes.Clone(e.Body)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read pending log entries: %w", err)
	}
	return out, nil
}

// IntegrateLog moves the tree from in.OldSize to in.NewSize in one
// transaction. The state row is updated first: a concurrent integration
// from the same size waits on its lock and then finds the size changed.
func (s *Store) IntegrateLog(ctx context.Context, in *pb.LogIntegration) error {
	if in.NewSize != in.OldSize+int64(len(in.Seqs)) {
		return fmt.Errorf("postgres: integration of %d entries from size %d cannot reach size %d", len(in.Seqs), in.OldSize, in.NewSize)
	}
	idx := make([]int64, len(in.Seqs))
	for i := range idx {
		idx[i] = in.OldSize + int64(i)
	}
	ids, hashes := make([]int64, len(in.Hashes)), make([][]byte, len(in.Hashes))
	for i, h := range in.Hashes {
		ids[i], hashes[i] = h.ID, h.Hash[:]
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE log_state SET size = $1, root = $2 WHERE size = $3`, in.NewSize, in.Root[:], in.OldSize)
		if err != nil {
			return fmt.Errorf("couldn't update the log's state: %w", conflict(err))
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%w: the log no longer has %d entries", pb.ErrStoreConflict, in.OldSize)
		}
		tag, err = tx.Exec(ctx, `UPDATE log_entries e SET idx = d.idx FROM unnest($1::bigint[], $2::bigint[]) AS d(seq, idx)
			WHERE e.seq = d.seq AND e.idx IS NULL`, in.Seqs, idx)
		if err != nil {
			return fmt.Errorf("couldn't place log entries: %w", conflict(err))
		}
		if tag.RowsAffected() != int64(len(in.Seqs)) {
			return fmt.Errorf("%w: some log entries were placed already", pb.ErrStoreConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO log_hashes (id, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, ids, hashes); err != nil {
			return fmt.Errorf("couldn't store the log's hashes: %w", conflict(err))
		}
		return nil
	})
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

func (s *Store) LogHashes(ctx context.Context, ids []int64) ([][32]byte, error) {
	if len(ids) > maxHashRead {
		return nil, fmt.Errorf("postgres: %d stored hashes asked at once; at most %d", len(ids), maxHashRead)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, hash FROM log_hashes WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	got := make(map[int64][32]byte, len(ids))
	var id int64
	var b []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &b}, func() error {
		var h [32]byte
		copy(h[:], b)
		got[id] = h
		return nil
	}); err != nil {
		return nil, fmt.Errorf("couldn't read stored hashes: %w", err)
	}
	return pb.HashesInOrder(ids, got)
}

func (s *Store) LogEntries(ctx context.Context, from int64, n int) ([]pb.LogEntry, error) {
	n = min(max(n, 0), pb.MaxLogRead)
	return s.logEntries(ctx, `SELECT idx, subject, body FROM log_entries WHERE idx >= $1 ORDER BY idx LIMIT $2`, from, n)
}

func (s *Store) SubjectLog(ctx context.Context, subject string, limit int) ([]pb.LogEntry, error) {
	limit = min(max(limit, 0), pb.MaxLogRead)
	return s.logEntries(ctx, `SELECT idx, subject, body FROM log_entries WHERE subject = $1 AND idx IS NOT NULL ORDER BY idx LIMIT $2`, subject, limit)
}

func (s *Store) logEntries(ctx context.Context, q string, args ...any) ([]pb.LogEntry, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read log entries: %w", err)
	}
	var out []pb.LogEntry
	var e pb.LogEntry
	if _, err := pgx.ForEachRow(rows, []any{&e.Index, &e.Subject, &e.Body}, func() error {
		out = append(out, pb.LogEntry{Index: e.Index, Subject: e.Subject, Body: bytes.Clone(e.Body)})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("couldn't read log entries: %w", err)
	}
	return out, nil
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
