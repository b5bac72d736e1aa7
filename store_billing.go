package paybound

import (
	"context"
	"time"
)

// BillingStore is the storage of Token Pay (internal/billing).
type BillingStore interface {
	// BillingObject returns object id, or ErrNotFound.
	BillingObject(ctx context.Context, id string) (*BillingObject, error)
	// BillingObjects returns provider's objects of kind, oldest first; with
	// customer set, only that customer's. At most limit+1 are read, so a
	// caller can tell the limit was passed.
	BillingObjects(ctx context.Context, provider, customer, kind string, limit int) ([]BillingObject, error)
	// DueBillingObjects returns up to limit objects whose DueAt is at or
	// before now, earliest first.
	DueBillingObjects(ctx context.Context, now time.Time, limit int) ([]BillingObject, error)
	// UsageEventsSeen returns which of ids (at most MaxEventBatch) are
	// among provider's remembered usage event IDs (UsageEventIDs).
	UsageEventsSeen(ctx context.Context, provider string, ids []string) (map[string]bool, error)
	// DeleteUsageEventIDs forgets up to limit usage event IDs seen before
	// cutoff, and returns how many it forgot; fewer than limit need not
	// mean none is left (a store may look at limit IDs and forget those
	// seen before cutoff). Usage lines stay.
	DeleteUsageEventIDs(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// UsageLines returns the lines f selects, oldest first (an event's by
	// Line), at least f.Limit+1 when there are more than f.Limit (a store
	// may read an event's lines together).
	UsageLines(ctx context.Context, f UsageFilter) ([]UsageLine, error)
}

// BillingPart is Token Pay's share of a Batch. A store writes
// BillingObjects in order, each a new object (Version 1) inserted or a
// change of one whose stored version must be Version-1: a shared store
// refuses the batch with ErrStoreConflict otherwise (another process
// changed it meanwhile). UsageEventIDs are inserted, keyed by provider and
// event ID: an ID remembered already (another process took it) refuses
// the batch with ErrStoreConflict too, so the event is decided again as a
// duplicate. UsageLines are inserted; a store may write them in packs (an
// event's lines are consecutive; an ID may come back once it was
// forgotten), and may forget an event ID through its event's lines (the
// SQLite store does), so an ID comes with its event's lines, in the same
// batch, and its SeenAt is before its lines' CreatedAt + 1 s.
type BillingPart struct {
	BillingObjects []BillingObject
	UsageEventIDs  []UsageEventID
	UsageLines     []UsageLine
}

// UsageEventID is a usage event's ID remembered for the deduplication,
// with when it was seen (its arrival), until DeleteUsageEventIDs forgets
// it: at least EventDedupWindow.
type UsageEventID struct {
	ProviderID string
	EventID    string
	SeenAt     time.Time // to the millisecond
}

// Empty reports whether p writes nothing.
func (p *BillingPart) Empty() bool {
	return len(p.BillingObjects)+len(p.UsageEventIDs)+len(p.UsageLines) == 0
}
