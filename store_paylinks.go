package paybound

import "context"

// PayLinkStore is the storage of payment links (internal/paylinks).
type PayLinkStore interface {
	// PayLink returns link id.
	PayLink(ctx context.Context, id string) (*PayLink, error)
	// ListPayLinks lists a merchant's links, newest first.
	ListPayLinks(ctx context.Context, f PayLinkFilter) (_ []PayLink, hasMore bool, _ error)
	// PayLinkPayments returns the IDs of the payments made through link
	// id, oldest first, at most limit.
	PayLinkPayments(ctx context.Context, id string, limit int) ([]string, error)
}

// PayLinkPart is the payment links' share of a Batch. A store writes
// PayLinks in order, each a new link (Version 1) or a change of one whose
// stored version must be Version-1: a shared store refuses the batch with
// ErrStoreConflict otherwise, so that two processes never both count the
// last use of a link. LinkPayments are inserted.
type PayLinkPart struct {
	PayLinks     []PayLink
	LinkPayments []PayLinkPayment
}

// Empty reports whether p writes nothing.
func (p *PayLinkPart) Empty() bool { return len(p.PayLinks)+len(p.LinkPayments) == 0 }
