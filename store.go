package paybound

import (
	"context"
	"errors"
)

// ErrStoreConflict is wrapped by a shared store's Commit when another
// process changed what the batch was computed from (a balance that would now
// overdraw, a payment's version, a unique key): nothing was written, and the
// batch can be recomputed from fresh state.
var ErrStoreConflict = errors.New("store conflict: another writer changed the rows this batch read")

// SharedStore is a store that several Paybound processes may write at once
// (PostgreSQL). The ledger writer then takes IDs from reserved blocks,
// confirms a decline against the stored balance before making it, and
// recomputes a batch whose Commit fails with ErrStoreConflict.
type SharedStore interface {
	Store
	// ReserveIDs returns the first IDs of a block of IDBlock account IDs
	// and a block of IDBlock transfer IDs that no other process will use.
	ReserveIDs(ctx context.Context) (account, transfer int64, err error)
}

// IDBlock is how many IDs ReserveIDs reserves of each kind.
const IDBlock = 1024

// Batch is everything one group commit writes, in one transaction: the
// ledger's account balances (final values) and new transfers, and the domain
// rows that go with them. A store writes all of it or none of it. It is one
// part per capability, declared next to that capability's store interface
// (store_<capability>.go), which says how a store writes it; the parts'
// fields are promoted, so b.Payments is b.PaymentPart.Payments.
type Batch struct {
	LedgerPart
	PaymentPart
	MandatePart
	StepUpPart
	AgentKeyPart
	LogPart
	DisputePart
	PayLinkPart
	CheckoutPart
	WebhookPart
	X402Part
	BillingPart
	MandateRequestPart
}

// AccountChange is the sum of a batch's changes to one account's balances.
// Created marks an account the batch creates: a store inserts it with these
// balances (and Accounts[i]'s owner, currency and flags).
type AccountChange struct {
	Created                                                    bool
	DebitsPending, DebitsPosted, CreditsPending, CreditsPosted int64
}

// UsageChange is the sum of a batch's changes to one mandate usage row.
type UsageChange struct{ Spent, Payments int64 }

// Empty reports whether b writes nothing: whether each of its parts does.
func (b *Batch) Empty() bool {
	return b.LedgerPart.Empty() && b.PaymentPart.Empty() && b.MandatePart.Empty() &&
		b.StepUpPart.Empty() && b.AgentKeyPart.Empty() && b.LogPart.Empty() && b.DisputePart.Empty() &&
		b.PayLinkPart.Empty() && b.CheckoutPart.Empty() && b.WebhookPart.Empty() &&
		b.X402Part.Empty() && b.BillingPart.Empty() && b.MandateRequestPart.Empty()
}

// MaxListLimit is the largest page a list returns.
const MaxListLimit = 100

// PageLimit is a list's page size: limit, or MaxListLimit when limit is 0
// or more than that.
func PageLimit(limit int) int {
	if limit <= 0 || limit > MaxListLimit {
		return MaxListLimit
	}
	return limit
}

// Page trims rows, read with one more than limit, to limit, and reports
// whether there were more.
func Page[T any](rows []T, limit int) ([]T, bool) {
	if len(rows) > limit {
		return rows[:limit], true
	}
	return rows, false
}

// Store is durable storage: one interface per capability, and the one
// Commit that writes a Batch, whatever capabilities it touches, in one
// transaction. Implementations: internal/sqlite (embedded default) and
// internal/postgres; internal/storetest holds the conformance suite, a file
// per capability, that both must pass. A new capability declares its
// interface in a file of its own (store_<capability>.go), embeds it here
// and adds its part to Batch.
//
// Commit is called by the single ledger writer only. Reads may be called
// concurrently from anywhere and see only committed data. Lookups of a
// missing row return an *Error with code ErrNotFound.
type Store interface {
	// Commit durably writes b in one transaction (fsync before returning).
	Commit(ctx context.Context, b *Batch) error

	LedgerStore
	PaymentStore
	MandateStore
	StepUpStore
	AgentKeyStore
	DisputeStore
	LogStore
	RiskStore
	PayLinkStore
	SettlementStore
	CheckoutStore
	WebhookStore
	X402Store
	BillingStore
	MandateRequestStore
	SignInStore
	BillingCustomerStore

	Close() error
}
