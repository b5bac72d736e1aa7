package paybound

import (
	"context"
	"time"
)

// PaymentStore is the payments core's storage (internal/service):
// identities and their API keys, payments with their refunds and top-ups,
// and the idempotency records of every capability's requests.
type PaymentStore interface {
	Principal(ctx context.Context, keyHash [32]byte) (Principal, error)
	User(ctx context.Context, id string) (*User, error)
	Merchant(ctx context.Context, id string) (*Merchant, error)
	Agent(ctx context.Context, id string) (*Agent, error)

	// Payment returns payment id. A payment read back, by any method, has
	// a Metadata map even when it was written with none (nil), so that the
	// API always shows metadata as an object.
	Payment(ctx context.Context, id string) (*Payment, error)
	// PaymentByConfirmation returns the payment whose confirmation is id.
	PaymentByConfirmation(ctx context.Context, id string) (*Payment, error)
	ListPayments(ctx context.Context, f PaymentFilter) (_ []Payment, hasMore bool, _ error)
	// ExpiredPayments returns up to limit IDs of payments whose hold is still
	// open (status authorized) and whose authorization_expires_at <= now,
	// then of payments still awaiting confirmation past its expiry.
	ExpiredPayments(ctx context.Context, now time.Time, limit int) ([]string, error)

	// LookupIdempotency returns the stored records among keys (in any
	// order; missing keys are simply absent). The ledger writer calls it once
	// per batch for all the batch's keys.
	LookupIdempotency(ctx context.Context, keys []IdempotencyKey) ([]IdempotencyRecord, error)
	// DeleteIdempotency removes records created before cutoff, at most limit.
	DeleteIdempotency(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// PaymentPart is the payments core's share of a Batch (internal/service):
// identities and their API keys, payments with their refunds and top-ups,
// and every capability's idempotency records. A store writes each row in
// the final state the batch gives it; a shared store checks each payment's
// version first (PaymentVersions).
type PaymentPart struct {
	Payments []Payment // inserted or updated, final state
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
}

// Empty reports whether p writes nothing (PaymentVersions parallels
// Payments).
func (p *PaymentPart) Empty() bool {
	return len(p.Payments)+len(p.Refunds)+len(p.Topups)+len(p.Users)+len(p.Merchants)+
		len(p.Agents)+len(p.APIKeys)+len(p.Idempotency) == 0
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

// IdempotencyKey names a record: keys are per caller.
type IdempotencyKey struct{ Caller, Key string }

// IdempotencyRetention is how long a key is remembered at least.
const IdempotencyRetention = 24 * time.Hour
