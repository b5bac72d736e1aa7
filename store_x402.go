package paybound

import (
	"context"
	"time"
)

// X402Store is the storage of the x402 facilitator's tabs (internal/x402pay).
type X402Store interface {
	// Tab returns tab id.
	Tab(ctx context.Context, id string) (*Tab, error)
	// TabOfPayment returns the tab whose deposit is payment paymentID, or
	// ErrNotFound.
	TabOfPayment(ctx context.Context, paymentID string) (*Tab, error)
	// TabsClosingBefore returns up to limit tabs that are closing and whose
	// grace ended before t, oldest first.
	TabsClosingBefore(ctx context.Context, t time.Time, limit int) ([]Tab, error)
}

// X402Part is the x402 facilitator's share of a Batch. A store writes Tabs
// in order, each a new tab (Version 1) or a change of one whose stored
// version must be Version-1: a shared store refuses the batch with
// ErrStoreConflict otherwise (another process changed the tab meanwhile).
type X402Part struct {
	Tabs []Tab
}

// Empty reports whether p writes nothing.
func (p *X402Part) Empty() bool { return len(p.Tabs) == 0 }
