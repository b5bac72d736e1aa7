package paybound

import "time"

// A payment link is a merchant's standing offer of a fixed amount: its URL
// (<public base>/l/{id}) can be handed to a person or an agent, who pays it
// through the API (POST /v1/payment_links/{id}/payments) like any payment,
// under a mandate or with the user's own key. Each payment records the link
// (a PayLinkPayment row, and the payment's metadata "payment_link"); a link
// may be limited in uses and in time, and deactivated by its merchant.

// PrefixPayLink is the ID prefix of payment links.
const PrefixPayLink = "plink_"

// MetadataPayLink is the payment metadata key that names the link a
// payment was made through.
const MetadataPayLink = "payment_link"

// Limits of a payment link.
const (
	// MaxPayLinkUses bounds max_uses.
	MaxPayLinkUses = 1_000_000
	// MaxPayLinkLifetime bounds how far in the future expires_at may be.
	MaxPayLinkLifetime = 366 * 24 * time.Hour
)

// Errors of paying a link: the link can't be paid any more. Nothing is
// changed, and no payment exists.
const (
	ErrPayLinkInactive Code = "payment_link_inactive"
	ErrPayLinkExpired  Code = "payment_link_expired"
	ErrPayLinkUsedUp   Code = "payment_link_used_up"
)

func init() {
	for _, c := range []Code{ErrPayLinkInactive, ErrPayLinkExpired, ErrPayLinkUsedUp} {
		codeTypes[c] = TypeConflict
	}
}

// PayLink is a payment link. Its terms (merchant, amount, currency,
// description, expiry, MaxUses) never change; only Active does, when the
// merchant deactivates it. Uses counts the payments made through it that
// were not declined (authorized, captured or waiting for the user's
// confirmation): the ledger writer counts them in a usage row keyed by the
// link's ID (PayLinkUsage), capped at MaxUses, so that concurrent payers,
// in one process or several, never pass the cap; reads fill Uses in from
// that row. MaxUses 0 means no limit. Version is the store's
// optimistic-concurrency counter: one more on every write.
type PayLink struct {
	ID          string     `json:"id"`
	Object      string     `json:"object"`
	MerchantID  string     `json:"merchant_id"`
	Amount      int64      `json:"amount"`
	Currency    string     `json:"currency"`
	Description string     `json:"description"`
	Active      bool       `json:"active"`
	ExpiresAt   *time.Time `json:"expires_at"`
	MaxUses     int64      `json:"max_uses"`
	Uses        int64      `json:"uses"`
	URL         string     `json:"url"`
	CreatedAt   time.Time  `json:"created_at"`
	Version     int64      `json:"-"`
}

// Payable returns the code that refuses a payment of l at now, or "" when
// it may be paid: deactivated, expired (expires_at is exclusive) or used up.
func (l *PayLink) Payable(now time.Time) Code {
	switch {
	case !l.Active:
		return ErrPayLinkInactive
	case l.ExpiresAt != nil && !now.Before(*l.ExpiresAt):
		return ErrPayLinkExpired
	case l.MaxUses > 0 && l.Uses >= l.MaxUses:
		return ErrPayLinkUsedUp
	}
	return ""
}

// UsesLeft is how many more payments l accepts, or -1 without a limit.
func (l *PayLink) UsesLeft() int64 {
	if l.MaxUses == 0 {
		return -1
	}
	return max(l.MaxUses-l.Uses, 0)
}

// PayLinkUsage is the period key of a link's usage row (the ledger's
// MandateUsageRow, whose MandateID is then the link's ID): Payments is the
// link's uses, CapPayments its MaxUses.
const PayLinkUsage = "payment_link_uses"

// PayLinkPayment records that a payment was made through a link.
type PayLinkPayment struct {
	LinkID    string
	PaymentID string
	CreatedAt time.Time
}

// PayLinkFilter selects a merchant's links for a list, or a link's
// payments, newest first.
type PayLinkFilter struct {
	MerchantID    string
	LinkID        string
	StartingAfter string
	Limit         int
}

// PayLinkOffer is what GET /l/{id} tells an agent: the link's terms, whether it
// can be paid now, and the API call that pays it.
type PayLinkOffer struct {
	Object       string `json:"object"` // "payment_link_offer"
	ID           string `json:"id"`
	URL          string `json:"url"`
	MerchantID   string `json:"merchant_id"`
	MerchantName string `json:"merchant_name"`
	Amount       int64  `json:"amount"`
	Currency     string `json:"currency"`
	// AmountDisplay is the amount in major units, for people: "12.50".
	AmountDisplay string     `json:"amount_display"`
	Description   string     `json:"description"`
	ExpiresAt     *time.Time `json:"expires_at"`
	// UsesLeft is how many more payments the link accepts; null: no limit.
	UsesLeft *int64 `json:"uses_left"`
	// Status is "open", or why the link can't be paid: "inactive",
	// "expired" or "used_up".
	Status string      `json:"status"`
	Pay    PayLinkCall `json:"pay"`
}

// PayLinkCall is the API call that pays a link.
type PayLinkCall struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    map[string]string `json:"body"`
	Notes   string            `json:"notes"`
}
