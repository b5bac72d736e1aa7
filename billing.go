package paybound

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Token Pay (internal/billing): a provider (a merchant with billing on)
// meters its customers' usage, prices it per 1M units, and sells them
// credit, which it holds atomically on the hot path so that concurrent
// requests can never spend more than there is.
//
// Credit is money in the ledger. A provider's grants move credit from its
// issuing account (BillingIssuedOwner, which goes negative: what the
// provider owes in service) to the customer's credit account
// (BillingCreditOwner, which can never go negative); a reservation is a hold
// on the credit account towards the provider's usage account
// (BillingUsageOwner); the usage event that names it posts what was used and
// releases the rest. So a reservation is decided by the ledger writer
// against the ledger's own available balance, in one process or across
// several sharing a PostgreSQL database.

// ID prefixes of Token Pay's objects.
const (
	PrefixMeter       = "mtr_"
	PrefixPrice       = "price_"
	PrefixGrant       = "grant_"
	PrefixReservation = "rsv_"
	PrefixInvoice     = "inv_"
)

// MeterLLMTokens is the built-in meter every provider has: tokens, by model
// and token type (TokenTypes). Its events carry a usage object.
const MeterLLMTokens = "llm_tokens"

// TokenTypes are the built-in meter's token types.
var TokenTypes = []string{"input", "cached_input", "cache_write", "output", "reasoning"}

// Aggregations are how a generic meter aggregates its events' values.
var Aggregations = []string{"sum", "count", "max", "unique_count", "latest"}

// Grant categories, drawn down in this order at equal priority.
const (
	GrantPromotional = "promotional"
	GrantIncluded    = "included"
	GrantPaid        = "paid"
)

// Limits of Token Pay's inputs.
const (
	// MaxEventBatch is the most usage events one POST /v1/billing/events takes.
	MaxEventBatch = 1000
	// MaxBillingIDLength bounds a usage event's ID, a meter's event type,
	// a model and a price's model pattern.
	MaxBillingIDLength = 128
	// MaxEventQuantity bounds one event's quantity of one token type (or a
	// generic meter's value): 10^12.
	MaxEventQuantity = 1_000_000_000_000
	// MaxUnitPriceNanos bounds a unit price, in 10^-9 of the currency's
	// major unit per 1M units: 10^15 (a million major units per 1M units).
	MaxUnitPriceNanos = 1_000_000_000_000_000
	// EventDedupWindow is how long a usage event's ID is remembered at
	// least: a duplicate within it is counted as one and never charged.
	// The pruner forgets an ID a day after the window; an event that old
	// is refused as too late anyway.
	EventDedupWindow = 35 * 24 * time.Hour
	// MaxReservationTTL bounds a reservation's expires_in.
	MaxReservationTTL = time.Hour
	// DefaultReservationTTL is a reservation's lifetime when the request
	// names none.
	DefaultReservationTTL = 5 * time.Minute
	// MaxPriceTiers bounds a graduated price's tiers.
	MaxPriceTiers = 16
	// MaxGroupBy bounds a meter's group_by and a usage query's group_by.
	MaxGroupBy = 8
	// MaxUsageEvents bounds how many stored event lines one usage query
	// aggregates: a longer range is refused (narrow from/to).
	MaxUsageEvents = 1_000_000
	// MaxCustomerGrants bounds a customer's grants with credit left.
	MaxCustomerGrants = 1000
	// MaxProviderPrices bounds a provider's prices (all versions) and
	// meters.
	MaxProviderPrices = 10_000
)

// Errors of Token Pay.
const (
	// ErrEventTooLate: a usage event older than the late window.
	ErrEventTooLate Code = "billing_event_too_late"
	// ErrNoPrice: no price matches a usage event's meter and dimensions at
	// its time.
	ErrNoPrice Code = "billing_no_price"
	// ErrReservationState: the reservation is already settled, released
	// or expired.
	ErrReservationState Code = "billing_reservation_state"
	// ErrGrantState: the grant is already voided or expired.
	ErrGrantState Code = "billing_grant_state"
	// ErrInvoiceState: the invoice is finalized, or can't be yet.
	ErrInvoiceState Code = "billing_invoice_state"
	// ErrSubscriptionState: the subscription is already canceled.
	ErrSubscriptionState Code = "billing_subscription_state"
)

func init() {
	codeTypes[ErrEventTooLate] = TypeInvalidRequest
	codeTypes[ErrNoPrice] = TypeInvalidRequest
	codeTypes[ErrReservationState] = TypeConflict
	codeTypes[ErrGrantState] = TypeConflict
	codeTypes[ErrInvoiceState] = TypeConflict
	codeTypes[ErrSubscriptionState] = TypeConflict
}

// The owners of Token Pay's ledger accounts.

// BillingCreditOwner owns customer's credit with provider (an account that
// can never go negative).
func BillingCreditOwner(provider, customer string) string {
	return "billing_credit:" + provider + ":" + customer
}

// BillingIssuedOwner owns provider's issued credit: minus every grant made.
func BillingIssuedOwner(provider string) string { return "billing_issued:" + provider }

// BillingUsageOwner owns provider's used credit: every settled usage.
func BillingUsageOwner(provider string) string { return "billing_usage:" + provider }

// BillingOverdraftOwner owns customer's overdraft debt with provider:
// usage a plan whose overage policy is "allow" let through beyond the
// credit is debited here, so the account's negative balance is what the
// customer owes; a recharge credits it back first.
func BillingOverdraftOwner(provider, customer string) string {
	return "billing_overdraft:" + provider + ":" + customer
}

// BillingOverdraftRoomOwner owns what customer may still overdraw with
// provider: funded up to the plan's overdraft cap (less what is owed) from
// the provider's line, never negative, and drawn (held, then posted) by
// usage beyond the credit. Its constraint holds the cap, as the credit
// account's holds the credit, across processes too.
func BillingOverdraftRoomOwner(provider, customer string) string {
	return "billing_overdraft_room:" + provider + ":" + customer
}

// BillingOverdraftLineOwner owns provider's overdraft line: minus the room
// it extended, plus the debt its customers ran up (each overdraft draw
// moves the debt here from BillingOverdraftOwner).
func BillingOverdraftLineOwner(provider string) string { return "billing_overdraft_line:" + provider }

// Meter is a generic meter: how a provider's events of EventType become
// usage. The built-in LLM token meter (MeterLLMTokens) is not stored.
type Meter struct {
	ID          string    `json:"id"`
	Object      string    `json:"object"` // "billing_meter"
	ProviderID  string    `json:"provider_id"`
	EventType   string    `json:"event_type"`
	ValuePath   string    `json:"value_path"` // dotted path into the event's data; unused by count
	Aggregation string    `json:"aggregation"`
	GroupBy     []string  `json:"group_by"`
	CreatedAt   time.Time `json:"created_at"`
}

// Price prices a meter's usage per 1M units. A price applies to the
// meter's usage whose model matches Model (exact, or a prefix ending in
// "*", or "*" alone) and whose token type is TokenType ("" for any), from
// EffectiveFrom on, until a later version of the same dimensions takes
// over. UnitPrice is the exact decimal of the currency's major unit per 1M
// units, with at most 9 fractional digits; UnitPriceNanos is the same in
// 10^-9 major units, which every computation uses.
type Price struct {
	ID             string `json:"id"`
	Object         string `json:"object"` // "billing_price"
	ProviderID     string `json:"provider_id"`
	Meter          string `json:"meter"`
	Model          string `json:"model"`
	TokenType      string `json:"token_type"`
	Currency       string `json:"currency"`
	UnitPrice      string `json:"unit_price"`
	UnitPriceNanos int64  `json:"unit_price_nanos"`
	// Tiers, when set, make the price graduated: each customer's units
	// of this price version in a calendar month (UTC, by the event's time)
	// are priced by the tier they fall in, counted in the order events are
	// acknowledged. UnitPrice is then the first tier's.
	Tiers         []PriceTier `json:"tiers,omitempty"`
	Version       int64       `json:"version"`
	EffectiveFrom time.Time   `json:"effective_from"`
	CreatedAt     time.Time   `json:"created_at"`
}

// PriceTier is one tier of a graduated price: the units of a month from
// the tier before's UpTo (0 for the first) up to UpTo (nil for the last,
// which has no end) cost UnitPrice per 1M units.
type PriceTier struct {
	UpTo           *int64 `json:"up_to"`
	UnitPrice      string `json:"unit_price"`
	UnitPriceNanos int64  `json:"unit_price_nanos"`
}

// Grant is credit a provider gave a customer. Amount never changes;
// Remaining falls as usage draws the grant down (by Priority, lower first;
// then category, promotional before included before paid; then earliest
// expiry; then oldest). Voiding or expiring a grant moves what remains
// back out of the customer's credit account in the ledger: an entry, never
// an edit of what was drawn.
type Grant struct {
	ID          string     `json:"id"`
	Object      string     `json:"object"` // "billing_grant"
	ProviderID  string     `json:"provider_id"`
	CustomerID  string     `json:"customer_id"`
	Currency    string     `json:"currency"`
	Category    string     `json:"category"`
	Priority    int        `json:"priority"`
	Amount      int64      `json:"amount"`
	Remaining   int64      `json:"remaining"`
	Status      string     `json:"status"` // active, voided, expired
	EffectiveAt time.Time  `json:"effective_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	VoidedAt    *time.Time `json:"voided_at,omitempty"`
	// Withdrawn is what voiding or expiry moved back out of the credit
	// account.
	Withdrawn int64     `json:"withdrawn,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Version   int64     `json:"-"`
}

// Reservation is credit held for usage about to happen.
type Reservation struct {
	ID         string `json:"id"`
	Object     string `json:"object"` // "billing_reservation"
	ProviderID string `json:"provider_id"`
	CustomerID string `json:"customer_id"`
	Meter      string `json:"meter"`
	Currency   string `json:"currency"`
	Amount     int64  `json:"amount"`
	// Overdraft is the part of Amount held on the customer's overdraft
	// (its plan allows overage), the rest being held on its credit.
	Overdraft       int64     `json:"overdraft,omitempty"`
	HoldID          int64     `json:"-"`      // on the credit; 0 when none
	OverdraftHoldID int64     `json:"-"`      // on the overdraft; 0 when none
	Status          string    `json:"status"` // active, settled, released, expired
	Settled         int64     `json:"settled"`
	EventID         string    `json:"event_id,omitempty"`
	ExpiresAt       time.Time `json:"expires_at"`
	CreatedAt       time.Time `json:"created_at"`
	Version         int64     `json:"-"`
}

// Accrual carries, per provider, customer and currency, the part of a
// minor unit that usage has cost but the ledger has not been charged yet:
// exact costs are summed in 10^-15 major units, and the ledger is charged
// the whole minor units of the running sum, so a customer is never charged
// a rounded amount twice nor loses a fraction.
type Accrual struct {
	ID         string `json:"id"`
	ProviderID string `json:"provider_id"`
	CustomerID string `json:"customer_id"`
	Currency   string `json:"currency"`
	// Carry is < one minor unit, in 10^-15 major units.
	Carry   int64 `json:"carry"`
	Version int64 `json:"-"`
}

// AccrualID is the ID of the accrual of customer with provider in currency.
func AccrualID(provider, customer, currency string) string {
	return "acr:" + provider + ":" + customer + ":" + currency
}

// BillingObject is a stored Token Pay object: a meter, price, grant,
// reservation or accrual, as its kind's JSON. Objects that change (grants,
// reservations, accruals) carry a version, one more on every write.
type BillingObject struct {
	ID         string
	Kind       string // meter, price, grant, reservation, accrual
	ProviderID string
	CustomerID string
	Version    int64
	Data       json.RawMessage
	// DueAt is when the sweep must look at the object again (an active
	// reservation's or grant's expiry), nil when never.
	DueAt     *time.Time
	CreatedAt time.Time
}

// UsageLine is one stored line of a usage event: the event's quantity of
// one token type (the LLM meter) or its value (a generic meter), with the
// price it was charged at and what the ledger was charged for it.
type UsageLine struct {
	ProviderID string
	EventID    string
	// Line is the token type ("" for a generic meter), and for a
	// graduated price's tier past the first, "#" and its number (the
	// units of one event in each tier are a line of their own).
	Line          string
	CustomerID    string
	Meter         string
	Time          time.Time // the event's own time, to the millisecond
	Model         string
	Quantity      int64
	PriceID       string
	Charged       int64 // minor units moved in the ledger from the credit for this line
	Overdraft     int64 // minor units moved in the ledger from the overdraft
	Uncollected   int64 // minor units neither could cover
	ReservationID string
	// Dims holds a generic meter's group_by values and unique value.
	Dims      map[string]string
	CreatedAt time.Time
}

// TokenType is l's token type ("" for a generic meter): its Line without
// the tier ("output#2" is output tokens in a price's second tier).
func (l *UsageLine) TokenType() string {
	tt, _, _ := strings.Cut(l.Line, "#")
	return tt
}

// Tier is the 1-based tier of a graduated price l was charged in (1 for
// an ungraduated price).
func (l *UsageLine) Tier() int {
	_, n, ok := strings.Cut(l.Line, "#")
	if !ok {
		return 1
	}
	t, err := strconv.Atoi(n)
	if err != nil || t < 1 {
		return 1
	}
	return t
}

// UsageLineKey is the Line of tokenType's units in tier (1-based) of a
// graduated price.
func UsageLineKey(tokenType string, tier int) string {
	if tier <= 1 {
		return tokenType
	}
	return tokenType + "#" + strconv.Itoa(tier)
}

// UsageFilter selects a customer's usage lines: [From, To) by event time.
type UsageFilter struct {
	ProviderID string
	CustomerID string
	From, To   time.Time
	Limit      int // the most lines read; more is an error
}
