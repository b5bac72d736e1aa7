package paybound

import "context"

// DisputeStore is the storage of disputes.
type DisputeStore interface {
	// Dispute returns dispute id.
	Dispute(ctx context.Context, id string) (*Dispute, error)
	// PaymentDisputes returns a payment's disputes, oldest first.
	PaymentDisputes(ctx context.Context, paymentID string) ([]Dispute, error)
	// ListDisputes lists disputes, newest first.
	ListDisputes(ctx context.Context, f DisputeFilter) (_ []Dispute, hasMore bool, _ error)
}

// DisputePart is the disputes' share of a Batch (internal/disputes).
type DisputePart struct {
	// Disputes are inserted or replaced whole.
	Disputes []Dispute
}

// Empty reports whether p writes nothing.
func (p *DisputePart) Empty() bool { return len(p.Disputes) == 0 }
