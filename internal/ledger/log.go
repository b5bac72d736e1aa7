package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/tlog"
)

// Log records ev as a transparency-log entry written with the batch, so
// that the entry exists exactly when the change it records does. Entries
// made inside a failed Atomic are undone with it.
func (tx *Tx) Log(ev pb.LogEvent) error {
	_, err := tx.log(ev, nil)
	return err
}

// LogPayment records ev about payment p, chained to p's previous entry, and
// moves p.LogHead to it; the caller then puts p.
func (tx *Tx) LogPayment(p *pb.Payment, ev pb.LogEvent) error {
	ev.Subject = p.ID
	if _, cached := tx.w.payments[p.ID]; p.Version == 0 && !cached {
		if tx.created == nil {
			tx.created = map[string]bool{}
		}
		tx.created[p.ID] = true
	}
	var prev *[32]byte
	if p.LogHead != ([32]byte{}) {
		prev = &p.LogHead
	}
	leaf, err := tx.log(ev, prev)
	if err != nil {
		return err
	}
	p.LogHead = leaf
	return nil
}

// log writes the entry and runs the observers on it; when one fails, the
// entry and what the observers before it wrote are undone.
func (tx *Tx) log(ev pb.LogEvent, prev *[32]byte) (leaf [32]byte, err error) {
	if len(tx.w.cfg.Observers) == 0 {
		return tx.logEntry(ev, prev)
	}
	err = tx.Atomic(func() error {
		if leaf, err = tx.logEntry(ev, prev); err != nil {
			return err
		}
		for _, o := range tx.w.cfg.Observers {
			if err := o(tx, ev); err != nil {
				return fmt.Errorf("couldn't observe %s of %s: %w", ev.Type, ev.Subject, err)
			}
		}
		return nil
	})
	return leaf, err
}

func (tx *Tx) logEntry(ev pb.LogEvent, prev *[32]byte) ([32]byte, error) {
	if ev.Type == "" || ev.Subject == "" {
		return [32]byte{}, errors.New("ledger: a log event needs a type and a subject")
	}
	var leaf [32]byte
	if logOff {
		// No entry: a head that differs from prev, as PutPayment wants.
		if prev != nil {
			leaf = *prev
		}
		binary.LittleEndian.PutUint64(leaf[:], binary.LittleEndian.Uint64(leaf[:])+1)
	} else {
		body, err := pb.EncodeLogEntry(ev, tx.now, prev)
		if err != nil {
			return [32]byte{}, err
		}
		leaf = pb.LeafHash(body)
		appendUndoable(tx, &tx.batch.Log, pb.LogRecord{Subject: ev.Subject, Body: body, Leaf: leaf})
	}
	if tx.logHead == nil {
		tx.logHead = map[string][32]byte{}
	}
	old, had := tx.logHead[ev.Subject]
	tx.undo = append(tx.undo, undoEntry{kind: undoLogHead, key: ev.Subject, oldHead: old, had: had})
	tx.logHead[ev.Subject] = leaf
	return leaf, nil
}

// IntegrateLog places up to limit pending entries of a store that several
// processes write (PostgreSQL) in the tree, and returns how many it placed
// and the highest Seq among those it found pending (-1: none). Any process
// may call it at any time: when two integrate at once, one wins and the
// other finds the entries placed (0, nil). Stores that place entries as
// they commit (SQLite) have none pending.
func IntegrateLog(ctx context.Context, st pb.LogStore, limit int) (n int, lastSeq int64, err error) {
	pending, err := st.PendingLog(ctx, limit)
	if err != nil || len(pending) == 0 {
		return 0, -1, err
	}
	lastSeq = pending[len(pending)-1].Seq
	size, _, err := st.LogState(ctx)
	if err != nil {
		return 0, lastSeq, err
	}
	leaves := make([]tlog.Hash, len(pending))
	in := &pb.LogIntegration{OldSize: size, NewSize: size + int64(len(pending)), Seqs: make([]int64, len(pending))}
	for i, e := range pending {
		leaves[i], in.Seqs[i] = pb.LeafHash(e.Body), e.Seq
	}
	first, hashes, root, err := tlog.Append(size, leaves, StoredHashes(ctx, st))
	if err != nil {
		return 0, lastSeq, fmt.Errorf("couldn't integrate the log: %w", err)
	}
	in.Root = root
	in.Hashes = make([]pb.LogHash, len(hashes))
	for i, h := range hashes {
		in.Hashes[i] = pb.LogHash{ID: first + int64(i), Hash: h}
	}
	if err := st.IntegrateLog(ctx, in); err != nil {
		if errors.Is(err, pb.ErrStoreConflict) {
			return 0, lastSeq, nil // another process integrated them
		}
		return 0, lastSeq, fmt.Errorf("couldn't integrate the log: %w", err)
	}
	return len(pending), lastSeq, nil
}

// StoredHashes reads the tree's stored hashes from st.
func StoredHashes(ctx context.Context, st pb.LogStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(ids []int64) ([]tlog.Hash, error) {
		hs, err := st.LogHashes(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(hs))
		for i := range hs {
			out[i] = hs[i]
		}
		return out, nil
	})
}

// Dispute returns dispute id as of this point in the batch.
func (tx *Tx) Dispute(id string) (pb.Dispute, error) {
	for i := len(tx.batch.Disputes) - 1; i >= 0; i-- {
		if tx.batch.Disputes[i].ID == id {
			return tx.batch.Disputes[i], nil
		}
	}
	d, err := tx.w.cfg.Store.Dispute(tx.ctx, id)
	if err != nil {
		return pb.Dispute{}, err
	}
	return *d, nil
}

// PaymentDisputes returns a payment's disputes as of this point in the
// batch, oldest first. A store that several processes share may hold one
// more, opened by another process; the payment's version, which opening a
// dispute changes, refuses such a batch.
func (tx *Tx) PaymentDisputes(paymentID string) ([]pb.Dispute, error) {
	ds, err := tx.w.cfg.Store.PaymentDisputes(tx.ctx, paymentID)
	if err != nil {
		return nil, err
	}
	for _, d := range tx.batch.Disputes {
		if d.PaymentID != paymentID {
			continue
		}
		i := slices.IndexFunc(ds, func(x pb.Dispute) bool { return x.ID == d.ID })
		if i < 0 {
			ds = append(ds, d)
		} else {
			ds[i] = d
		}
	}
	return ds, nil
}

// PutDispute records a dispute, new or changed, to be written with the batch.
func (tx *Tx) PutDispute(d pb.Dispute) { appendUndoable(tx, &tx.batch.Disputes, d) }
