package paybound

import (
	"context"
	"errors"
	"time"
)

// IdempotencyRecord is the stored outcome of a request made with an
// Idempotency-Key: the exact response, so a retry gets the same bytes, and a
// hash of the request, so a retry with another body is refused. Failed
// outcomes (declines, conflicts) are stored too: a retry can never succeed
// where the first try failed.
type IdempotencyRecord struct {
	Caller      string // the principal's ID: keys are per caller
	Key         string
	RequestHash [32]byte
	Status      int
	Body        []byte
	CreatedAt   time.Time
}

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

// IdempotencyKey names a record: keys are per caller.
type IdempotencyKey struct{ Caller, Key string }

// IdempotencyRetention is how long a key is remembered at least.
const IdempotencyRetention = 24 * time.Hour

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

// Nonce is a signed request's nonce, remembered until Expires.
type Nonce struct {
	KeyID   string
	Nonce   string
	Expires time.Time
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

// PaymentFilter selects payments for a list. Exactly the payments a caller
// is a party to: set PayerID, MerchantID or AgentID (none: all, for the
// operator). Results are newest first; StartingAfter is the last ID of the
// previous page.
type PaymentFilter struct {
	PayerID    string
	MerchantID string
	AgentID    string
	// Status, when set, selects the payments in that status only.
	Status        PaymentStatus
	StartingAfter string
	Limit         int
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

// HashesInOrder returns got's hashes in the order of ids, or an ErrNotFound
// error naming the first id that got lacks: how a store answers LogHashes
// after reading the ids in any order.
func HashesInOrder(ids []int64, got map[int64][32]byte) ([][32]byte, error) {
	out := make([][32]byte, len(ids))
	for i, id := range ids {
		h, ok := got[id]
		if !ok {
			return nil, Errorf(ErrNotFound, "", "no such stored hash: %d", id)
		}
		out[i] = h
	}
	return out, nil
}

// Store is durable storage. Implementations: internal/sqlite (embedded
// default) and, later, internal/postgres; internal/storetest holds the
// conformance suite both must pass.
//
// Commit is called by the single ledger writer only. Reads may be called
// concurrently from anywhere and see only committed data. Lookups of a
// missing row return an *Error with code ErrNotFound.
type Store interface {
	// Commit durably writes b in one transaction (fsync before returning).
	Commit(ctx context.Context, b *Batch) error
	// NextIDs returns the next free account and transfer IDs.
	NextIDs(ctx context.Context) (account, transfer int64, err error)

	Account(ctx context.Context, owner, currency string) (*Account, error)
	AccountByID(ctx context.Context, id int64) (*Account, error)
	AccountsByOwner(ctx context.Context, owner string) ([]Account, error)
	// PendingTransfer returns the pending transfer id and whether a post or
	// void has already resolved it.
	PendingTransfer(ctx context.Context, id int64) (_ *Transfer, resolved bool, _ error)
	// ScanLedger calls accounts for every account and then transfers for
	// every transfer in ID order, all from one consistent snapshot; a
	// callback's error stops the scan and is returned.
	ScanLedger(ctx context.Context, accounts func(*Account) error, transfers func(*Transfer) error) error

	Principal(ctx context.Context, keyHash [32]byte) (Principal, error)
	User(ctx context.Context, id string) (*User, error)
	Merchant(ctx context.Context, id string) (*Merchant, error)
	Agent(ctx context.Context, id string) (*Agent, error)

	Payment(ctx context.Context, id string) (*Payment, error)
	// PaymentByConfirmation returns the payment whose confirmation is id.
	PaymentByConfirmation(ctx context.Context, id string) (*Payment, error)
	ListPayments(ctx context.Context, f PaymentFilter) (_ []Payment, hasMore bool, _ error)
	// ExpiredPayments returns up to limit IDs of payments whose hold is still
	// open (status authorized) and whose authorization_expires_at <= now,
	// then of payments still awaiting confirmation past its expiry.
	ExpiredPayments(ctx context.Context, now time.Time, limit int) ([]string, error)

	Mandate(ctx context.Context, id string) (*Mandate, error)
	// ListMandates lists a user's mandates, newest first, optionally of one agent.
	ListMandates(ctx context.Context, f MandateFilter) (_ []Mandate, hasMore bool, _ error)
	// MandateUsage returns the usage row of a mandate's budget period, or
	// an ErrNotFound error when nothing was reserved in it yet.
	MandateUsage(ctx context.Context, mandateID, periodKey string) (*MandateUsageRow, error)

	// TOTP returns a user's one-time-code factor, or an ErrNotFound error.
	TOTP(ctx context.Context, userID string) (*TOTPFactor, error)
	// CodeFailures returns how many wrong one-time codes were tried on a
	// confirmation (0 when none).
	CodeFailures(ctx context.Context, confirmationID string) (int, error)
	// Passkeys returns a user's passkeys, oldest first.
	Passkeys(ctx context.Context, userID string) ([]Passkey, error)

	// AgentKey returns the signing key with thumbprint keyid.
	AgentKey(ctx context.Context, keyid string) (*AgentKey, error)
	// AgentKeys returns an agent's keys, oldest first.
	AgentKeys(ctx context.Context, agentID string) ([]AgentKey, error)
	// NonceSeen reports whether a signed request with keyid and nonce was
	// recorded (and not yet past its window).
	NonceSeen(ctx context.Context, keyid, nonce string) (bool, error)
	// DeleteNonces removes nonces whose window closed before cutoff, at most limit.
	DeleteNonces(ctx context.Context, cutoff time.Time, limit int) (int, error)

	// LookupIdempotency returns the stored records among keys (in any
	// order; missing keys are simply absent). The ledger writer calls it once
	// per batch for all the batch's keys.
	LookupIdempotency(ctx context.Context, keys []IdempotencyKey) ([]IdempotencyRecord, error)
	// DeleteIdempotency removes records created before cutoff, at most limit.
	DeleteIdempotency(ctx context.Context, cutoff time.Time, limit int) (int, error)

	// Dispute returns dispute id.
	Dispute(ctx context.Context, id string) (*Dispute, error)
	// PaymentDisputes returns a payment's disputes, oldest first.
	PaymentDisputes(ctx context.Context, paymentID string) ([]Dispute, error)
	// ListDisputes lists disputes, newest first.
	ListDisputes(ctx context.Context, f DisputeFilter) (_ []Dispute, hasMore bool, _ error)

	// PendingLog returns up to limit stored log entries that are not in the
	// tree yet, in the order their batches committed.
	PendingLog(ctx context.Context, limit int) ([]PendingLogEntry, error)
	// IntegrateLog appends pending entries to the tree in one transaction,
	// or fails with ErrStoreConflict when the stored tree no longer has
	// in.OldSize entries (another process integrated first).
	IntegrateLog(ctx context.Context, in *LogIntegration) error
	// ClaimLogKey records vkey as the key that signs this log's checkpoints
	// unless one is recorded already, and returns the recorded one.
	ClaimLogKey(ctx context.Context, vkey string) (string, error)
	// LogState returns the tree's size and root hash (zero for size 0).
	LogState(ctx context.Context) (size int64, root [32]byte, err error)
	// LogHashes returns the stored hashes ids, in order, or an ErrNotFound
	// error when one is not stored.
	LogHashes(ctx context.Context, ids []int64) ([][32]byte, error)
	// LogEntries returns up to n (at most MaxLogRead) entries from index
	// from on.
	LogEntries(ctx context.Context, from int64, n int) ([]LogEntry, error)
	// SubjectLog returns up to limit of a subject's entries that are in the
	// tree, in log order.
	SubjectLog(ctx context.Context, subject string, limit int) ([]LogEntry, error)

	// RecentPayments returns up to limit (at most MaxRecentPayments) of a
	// payer's payments, newest first, each with its merchant's category.
	RecentPayments(ctx context.Context, payerID string, limit int) ([]RecentPayment, error)
	// PaidMerchant reports whether one of the payer's last
	// MaxPaidMerchantScan payments went to merchantID and moved money
	// (status authorized, captured or refunded).
	PaidMerchant(ctx context.Context, payerID, merchantID string) (bool, error)
	// PayerActivity tallies the payments q selects as q.Add does, reading
	// at most MaxActivityScan of them (the newest) through the payer's
	// index. Risk control asks it of a SharedStore, for what other
	// processes did since it read the payer's recent payments.
	PayerActivity(ctx context.Context, q ActivityQuery) (Activity, error)
	// RiskRules returns the operator's risk rules, by name.
	RiskRules(ctx context.Context) ([]RiskRule, error)
	// PutRiskRule inserts r, or replaces the rule named r.Name.
	PutRiskRule(ctx context.Context, r RiskRule) error
	// DeleteRiskRule removes the rule name, or returns an ErrNotFound error.
	DeleteRiskRule(ctx context.Context, name string) error
	// AllMerchantFlags returns every flagged merchant's flags, by merchant.
	AllMerchantFlags(ctx context.Context) ([]MerchantFlags, error)
	// SetMerchantFlags replaces f.MerchantID's flags; no flags removes them.
	SetMerchantFlags(ctx context.Context, f MerchantFlags) error

	Close() error
}

// RecentPayment is what risk control reads of a payer's earlier payment.
type RecentPayment struct {
	ID          string
	MerchantID  string
	Category    string // the merchant's
	AgentID     string
	MandateID   string
	Currency    string
	Amount      int64
	Status      PaymentStatus
	DeclineCode Code
	CreatedAt   time.Time
}

// Bounds of risk control's reads: a payer's recent payments, and how far
// back PaidMerchant looks.
const (
	MaxRecentPayments   = 512
	MaxPaidMerchantScan = 10_000
)
