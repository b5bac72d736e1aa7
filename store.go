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
// rows that go with them. A store writes all of it or none of it.
type Batch struct {
	Accounts []Account // created or changed, with final balances
	// AccountChanges[i] is what the batch changed in Accounts[i]: the sum of
	// the changes its operations applied, never a difference of snapshots,
	// so that a cache the writer rebased on fresh state cannot enter it. A
	// store that several processes share applies these sums, so that
	// concurrent batches add up, and lets its constraints refuse an
	// overdraft; a store with one writer may simply write Accounts.
	AccountChanges []AccountChange
	Transfers      []Transfer
	Payments       []Payment // inserted or updated, final state
	// PaymentVersions[i] is the Version of Payments[i] that the writer read
	// (0: the batch creates it); a shared store refuses the batch when the
	// stored version differs. A payment's risk is written only when the
	// batch creates it.
	PaymentVersions []int64
	Refunds         []Refund
	Topups          []Topup
	Users           []User
	Merchants       []Merchant
	Agents          []Agent
	APIKeys         []APIKey
	Idempotency     []IdempotencyRecord
	// Mandates are inserted or, when present, have their revocation updated;
	// the rest of a mandate never changes.
	Mandates []Mandate
	// Usage rows are created or changed, with final values; UsageChanges[i]
	// is the sum of the batch's changes to Usage[i], as for accounts. A
	// shared store adds them to the stored row, creating it when missing.
	Usage        []MandateUsageRow
	UsageChanges []UsageChange
	// TOTP factors are inserted or replaced whole.
	TOTP []TOTPFactor
	// CodeFailures names a confirmation once for each wrong one-time code
	// tried on it; a store adds them to the confirmation's stored count.
	CodeFailures []string
	// Passkeys are inserted, or have their credential replaced, by
	// credential ID; a revocation, once stored, is never undone.
	Passkeys []Passkey
	// Nonces of signed requests; a nonce already stored refuses the batch.
	Nonces []Nonce
	// AgentKeys are inserted or have their not_after and revocation updated.
	AgentKeys []AgentKey
	// Log entries are stored awaiting integration into the tree, in order.
	Log []LogRecord
	// Disputes are inserted or replaced whole.
	Disputes []Dispute

	// Fresh and FreshUsage are set by a SharedStore's Commit: the stored
	// balances of the batch's existing accounts, and its usage rows, right
	// after it, including what other processes had changed, so that the
	// writer's cache catches up.
	Fresh      []Account
	FreshUsage []MandateUsageRow
	// MandatesChecked lists the mandates the batch's operations relied on
	// being usable (neither revoked nor replaced); a shared store refuses
	// the batch when another process revoked one of them since it was read,
	// and the batch is then recomputed on fresh state.
	MandatesChecked []string
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

// Empty reports whether b writes nothing.
func (b *Batch) Empty() bool {
	return len(b.Accounts)+len(b.Transfers)+len(b.Payments)+len(b.Refunds)+len(b.Topups)+
		len(b.Users)+len(b.Merchants)+len(b.Agents)+len(b.APIKeys)+len(b.Idempotency)+
		len(b.Mandates)+len(b.Usage)+len(b.TOTP)+len(b.Nonces)+len(b.AgentKeys)+len(b.Passkeys)+len(b.Log)+len(b.Disputes)+len(b.MandatesChecked)+len(b.CodeFailures) == 0
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

	Close() error
}
