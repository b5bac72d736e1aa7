package paybound

import "context"

// LogStore is the storage of the transparency log: the entries that
// batches store (Batch.Log), the tree they are integrated into, and the
// key that signs its checkpoints.
type LogStore interface {
	// PendingLog returns up to limit stored log entries that are not in the
	// tree yet, in the order their batches committed.
	PendingLog(ctx context.Context, limit int) ([]PendingLogEntry, error)
	// IntegrateLog appends pending entries to the tree in one transaction,
	// or fails with ErrStoreConflict when the stored tree no longer has
	// in.OldSize entries (another process integrated first).
	IntegrateLog(ctx context.Context, in *LogIntegration) error
	// ClaimLogKey records vkey as the key that signs this log's checkpoints
	// unless one is recorded already, and returns the recorded one.
	ClaimLogKey(ctx context.Context, vkey string) (string, error)
	// LogState returns the tree's size and root hash (zero for size 0).
	LogState(ctx context.Context) (size int64, root [32]byte, err error)
	// LogHashes returns the stored hashes ids, in order, or an ErrNotFound
	// error when one is not stored.
	LogHashes(ctx context.Context, ids []int64) ([][32]byte, error)
	// LogEntries returns up to n (at most MaxLogRead) entries from index
	// from on.
	LogEntries(ctx context.Context, from int64, n int) ([]LogEntry, error)
	// SubjectLog returns up to limit of a subject's entries that are in the
	// tree, in log order.
	SubjectLog(ctx context.Context, subject string, limit int) ([]LogEntry, error)
}

// LogPart is the transparency log's share of a Batch.
type LogPart struct {
	// Log entries are stored awaiting integration into the tree, in order.
	Log []LogRecord
}

// Empty reports whether p writes nothing.
func (p *LogPart) Empty() bool { return len(p.Log) == 0 }

// HashesInOrder returns got's hashes in the order of ids, or an ErrNotFound
// error naming the first id that got lacks: how a store answers LogHashes
// after reading the ids in any order.
func HashesInOrder(ids []int64, got map[int64][32]byte) ([][32]byte, error) {
	out := make([][32]byte, len(ids))
	for i, id := range ids {
		h, ok := got[id]
		if !ok {
			return nil, Errorf(ErrNotFound, "", "no such stored hash: %d", id)
		}
		out[i] = h
	}
	return out, nil
}
