package ledger

import (
	"context"
	"errors"
	"sync/atomic"

	pb "github.com/paybound/paybound"
)

// A NonceClaim is a signed request's nonce, verified but not yet spent,
// that the request's first ledger operation spends in its own batch,
// before the operation runs: the request then waits for one commit
// instead of two (the nonce's, then the operation's). The operation runs
// only when the nonce was unused; its batch commits both, or neither.
//
// The caller hands the claim to Do through the context (WithNonceClaim);
// the first Do that queues a request with that context takes it. Once the
// request's outcome is known (Do returned), Spent or Used tells what its
// batch committed. When neither holds (no operation ran, the batch failed,
// or the store could not be read), the claim is open again, and the
// caller spends it before it answers, by a Do of its own under it (an op
// that does nothing will do): no answer leaves before its nonce is
// durably spent.
type NonceClaim struct {
	n     pb.Nonce
	taken atomic.Bool  // a queued request carries it
	state atomic.Int32 // claimOpen, claimSpent or claimUsed
}

const (
	claimOpen int32 = iota
	claimSpent
	claimUsed
)

// NewNonceClaim returns an open claim on n.
func NewNonceClaim(n pb.Nonce) *NonceClaim { return &NonceClaim{n: n} }

// Nonce returns the nonce claimed.
func (c *NonceClaim) Nonce() pb.Nonce { return c.n }

// Spent reports whether a committed batch spent the nonce with the
// request's operation.
func (c *NonceClaim) Spent() bool { return c.state.Load() == claimSpent }

// Used reports whether the nonce was found used before: the request's
// operation did not run, and the request is a replay.
func (c *NonceClaim) Used() bool { return c.state.Load() == claimUsed }

type claimKey struct{}

// WithNonceClaim returns ctx carrying c, for the first Do under it.
func WithNonceClaim(ctx context.Context, c *NonceClaim) context.Context {
	return context.WithValue(ctx, claimKey{}, c)
}

// ClaimOf returns the claim ctx carries, or nil.
func ClaimOf(ctx context.Context) *NonceClaim {
	c, _ := ctx.Value(claimKey{}).(*NonceClaim)
	return c
}

// take returns ctx's claim if no request took it yet, marking it taken.
func take(ctx context.Context) *NonceClaim {
	if c := ClaimOf(ctx); c != nil && c.state.Load() == claimOpen && c.taken.CompareAndSwap(false, true) {
		return c
	}
	return nil
}

// spendClaim spends r's claimed nonce in tx, as an operation of its own
// that the request's operation cannot undo. It reports whether the
// request's operation may run; when not, r.err says why and r carries no
// replayed answer (a replayed nonce is not its key's request).
func (w *Writer) spendClaim(tx *Tx, r *request) bool {
	r.claimed = claimOpen
	_, err := w.runOp(tx, func(tx *Tx) (any, error) { return nil, tx.UseNonce(r.claim.n) })
	switch {
	case err == nil:
		r.claimed = claimSpent
		return true
	case errors.Is(err, ErrNonceUsed):
		r.claimed = claimUsed
	}
	r.result, r.err = nil, err
	if r.idem != nil {
		r.idem.Status, r.idem.Body, r.idem.Replayed = 0, nil, false
	}
	return false
}
