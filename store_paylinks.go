package paybound

import "context"

// PayLinkStore is the storage of payment links (internal/paylinks).
type PayLinkStore interface {
	// PayLink returns link id.
	PayLink(ctx context.Context, id string) (*PayLink, error)
	// ListPayLinks lists a merchant's links, newest first.
	ListPayLinks(ctx context.Context, f PayLinkFilter) (_ []PayLink, hasMore bool, _ error)
	// PayLinkPayments returns the IDs of the payments made through a link,
	// newest first (as lists are), paged as PayLinkFilter says: its
	// MerchantID is ignored, LinkID names the link.
	PayLinkPayments(ctx context.Context, f PayLinkFilter) (_ []string, hasMore bool, _ error)
	// PayLinkOfPayment returns the link payment paymentID was made
	// through (a PayLinkPayment row), or ErrNotFound: a payment's metadata
	// is the payer's to write, the row is the link's own record.
	PayLinkOfPayment(ctx context.Context, paymentID string) (linkID string, _ error)
}

// PayLinkPart is the payment links' share of a Batch. A store writes
// PayLinks in order, each a new link (Version 1) or a change of one whose
// stored version must be Version-1: a shared store refuses the batch with
// ErrStoreConflict otherwise (another process changed the link meanwhile).
// LinkPayments are inserted. A link's uses are not here: they are a usage
// row of the MandatePart (PayLinkUsage).
type PayLinkPart struct {
	PayLinks     []PayLink
	LinkPayments []PayLinkPayment
}

// Empty reports whether p writes nothing.
func (p *PayLinkPart) Empty() bool { return len(p.PayLinks)+len(p.LinkPayments) == 0 }
