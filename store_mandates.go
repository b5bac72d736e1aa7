package paybound

import "context"

// MandateStore is the storage of mandates (internal/mandates):
// the mandates themselves, and what each has reserved per budget period.
type MandateStore interface {
	Mandate(ctx context.Context, id string) (*Mandate, error)
	// ListMandates lists a user's mandates, newest first, optionally of one agent.
	ListMandates(ctx context.Context, f MandateFilter) (_ []Mandate, hasMore bool, _ error)
	// MandateUsage returns the usage row of a mandate's budget period, or
	// an ErrNotFound error when nothing was reserved in it yet.
	MandateUsage(ctx context.Context, mandateID, periodKey string) (*MandateUsageRow, error)
}

// MandateFilter selects mandates for a list.
type MandateFilter struct {
	UserID        string
	AgentID       string
	StartingAfter string
	Limit         int
}

// MandateUsageRow is what a mandate has reserved in one budget period
// (PeriodKey), with the caps it may not pass: the database of a shared store
// enforces them as constraints, whichever process reserves.
type MandateUsageRow struct {
	MandateID   string
	PeriodKey   string
	Spent       int64 // minor units reserved by holds and captures, less what was given back
	Payments    int64 // payments made in the period
	CapAmount   int64 // the budget: Spent never exceeds it
	CapPayments int64 // 0, or the most payments (kept on the "all" row)
}
