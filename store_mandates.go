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

// MandatePart is the mandates' share of a Batch (internal/mandates): new
// and revoked mandates, the usage rows that reserve against their budgets,
// and the mandates the batch relied on.
type MandatePart struct {
	// Mandates are inserted or, when present, have their revocation updated;
	// the rest of a mandate never changes.
	Mandates []Mandate
	// Usage rows are created or changed, with final values; UsageChanges[i]
	// is the sum of the batch's changes to Usage[i], as for accounts. A
	// shared store adds them to the stored row, creating it when missing.
	Usage        []MandateUsageRow
	UsageChanges []UsageChange
	// FreshUsage is set by a SharedStore's Commit: the batch's usage rows as
	// stored right after it, as LedgerPart.Fresh is for accounts.
	FreshUsage []MandateUsageRow
	// MandatesChecked lists the mandates the batch's operations relied on
	// being usable (neither revoked nor replaced); a shared store refuses
	// the batch when another process revoked one of them since it was read,
	// and the batch is then recomputed on fresh state.
	MandatesChecked []string
}

// Empty reports whether p writes nothing (UsageChanges parallels Usage,
// and FreshUsage is the store's answer).
func (p *MandatePart) Empty() bool {
	return len(p.Mandates)+len(p.Usage)+len(p.MandatesChecked) == 0
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
