package paybound

import (
	"strconv"
	"time"
)

// The checkout capability (internal/checkout): a merchant's catalog, the
// checkout sessions an agent opens against it for its user (the Agentic
// Commerce Protocol's checkout), the agent cards a user issues under a
// mandate, and the single-use vault tokens an agent delegates a card into.

// ID prefixes of the checkout.
const (
	PrefixProduct         = "prod_"
	PrefixCheckoutSession = "cs_"
	PrefixLineItem        = "li_"
	PrefixOrder           = "ord_"
	PrefixAgentCard       = "card_"
	PrefixVaultToken      = "vt_"
)

// Checkout error codes.
const (
	// ErrCheckoutState: the session cannot do what was asked in its state
	// (complete a canceled one, update a completed one).
	ErrCheckoutState Code = "checkout_session_state"
	// ErrProductUnavailable: a session names a product that is archived,
	// of another merchant, or priced in another currency.
	ErrProductUnavailable Code = "product_unavailable"
	// ErrCardInvalid: a card number that is not one of the caller's live
	// agent cards (delegate_payment).
	ErrCardInvalid Code = "card_invalid"
	// ErrAllowanceInvalid: an allowance the card's mandate does not allow,
	// or that does not fit the session it names.
	ErrAllowanceInvalid Code = "allowance_invalid"
	// ErrTokenInvalid: a vault token that is unknown, another agent's, for
	// another merchant or session, used, expired, or below the total.
	ErrTokenInvalid Code = "payment_token_invalid"
	// ErrUnsupportedVersion: an ACP API-Version Paybound does not speak.
	ErrUnsupportedVersion Code = "unsupported_api_version"
	// ErrProductArchived: an archived product cannot change.
	ErrProductArchived Code = "product_archived"
	// ErrMandateNotInForce: a card is issued only under a mandate in force.
	ErrMandateNotInForce Code = "mandate_not_in_force"
	// ErrCardLimit: a mandate has MaxCardsPerMandate cards already.
	ErrCardLimit Code = "agent_card_limit"
)

// init registers the checkout's codes in the one table of codes to types
// (error.go), which stays the only place a code's type is read from.
func init() {
	codeTypes[ErrCheckoutState] = TypeConflict
	codeTypes[ErrProductUnavailable] = TypeInvalidRequest
	codeTypes[ErrCardInvalid] = TypeInvalidRequest
	codeTypes[ErrAllowanceInvalid] = TypeInvalidRequest
	codeTypes[ErrTokenInvalid] = TypeInvalidRequest
	codeTypes[ErrUnsupportedVersion] = TypeInvalidRequest
	codeTypes[ErrProductArchived] = TypeConflict
	codeTypes[ErrMandateNotInForce] = TypeConflict
	codeTypes[ErrCardLimit] = TypeConflict
}

// Fulfillment is how a product reaches the buyer.
type Fulfillment string

const (
	FulfillmentDigital  Fulfillment = "digital"
	FulfillmentShipping Fulfillment = "shipping"
)

// Limits on the checkout's inputs.
const (
	MaxProductName     = 200
	MaxSKU             = 100
	MaxSessionLines    = 100  // distinct products in one session
	MaxLineQuantity    = 1000 // units of one product in one session
	MaxBuyerField      = 256  // each of a buyer's or an address's strings
	MaxTokenMetadata   = 20   // delegate_payment metadata keys
	MaxAllowanceTTL    = 24 * time.Hour
	MaxCardsPerMandate = 10 // cards ever issued under one mandate
	MaxSessionTokens   = 20 // payment tokens delegated for one session
	CheckoutSessionTTL = 24 * time.Hour
)

// Product is one item of a merchant's catalog, at a fixed price. Archived
// products stay readable (sessions and orders name them) but cannot be
// added to a session.
type Product struct {
	ID          string      `json:"id"`
	Object      string      `json:"object"`
	MerchantID  string      `json:"merchant_id"`
	Name        string      `json:"name"`
	SKU         string      `json:"sku"`
	Price       int64       `json:"price"`
	Currency    string      `json:"currency"`
	Fulfillment Fulfillment `json:"fulfillment"`
	Active      bool        `json:"active"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// CheckoutStatus is a session's state, named as ACP names it.
type CheckoutStatus string

const (
	CheckoutNotReady        CheckoutStatus = "not_ready_for_payment"
	CheckoutReady           CheckoutStatus = "ready_for_payment"
	CheckoutPendingApproval CheckoutStatus = "pending_approval"
	CheckoutCompleted       CheckoutStatus = "completed"
	CheckoutCanceled        CheckoutStatus = "canceled"
	CheckoutExpired         CheckoutStatus = "expired"
)

// Open reports whether a session in s may still be updated or completed.
func (s CheckoutStatus) Open() bool { return s == CheckoutNotReady || s == CheckoutReady }

// CheckoutSession is an agent's cart at one merchant, for its user, priced
// from the merchant's catalog. Amounts are minor units of Currency (upper
// case here; ACP's wire shows it lower case). Invariant: Total is the sum
// of the lines' totals and the fulfillment's.
type CheckoutSession struct {
	ID         string         `json:"id"`
	MerchantID string         `json:"merchant_id"`
	AgentID    string         `json:"agent_id"`
	UserID     string         `json:"user_id"`
	Status     CheckoutStatus `json:"status"`
	Currency   string         `json:"currency"`
	Lines      []CheckoutLine `json:"lines"`
	// Options are the fulfillment options the lines need (one per
	// fulfillment kind present), all selected.
	Options            []FulfillmentOption `json:"options"`
	Buyer              *Buyer              `json:"buyer,omitempty"`
	FulfillmentDetails *FulfillmentDetails `json:"fulfillment_details,omitempty"`
	Messages           []CheckoutMessage   `json:"messages"`
	ItemsAmount        int64               `json:"items_amount"`
	FulfillmentAmount  int64               `json:"fulfillment_amount"`
	Total              int64               `json:"total"`
	// PaymentID is the payment that completed (or awaits approval for) the
	// session; DeclinedPaymentID the last payment declined for it.
	PaymentID         string     `json:"payment_id,omitempty"`
	DeclinedPaymentID string     `json:"declined_payment_id,omitempty"`
	ConfirmationURL   string     `json:"confirmation_url,omitempty"`
	Order             *Order     `json:"order,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	ExpiresAt         time.Time  `json:"expires_at"`
	CanceledAt        *time.Time `json:"canceled_at,omitempty"`
	// Version is the store's count of the session's writes: 1 when it is
	// new, and each change is written as the stored version plus one. A
	// store that several processes share writes a change only over
	// Version-1, refusing the batch with ErrStoreConflict otherwise, so
	// that two processes' changes of one session never overwrite each
	// other (see CheckoutPart).
	Version int64 `json:"-"`
}

// StatusAt is the session's status as of now: an open session past its
// expiry is expired (no write is needed for it to be).
func (s *CheckoutSession) StatusAt(now time.Time) CheckoutStatus {
	if s.Status.Open() && !now.Before(s.ExpiresAt) {
		return CheckoutExpired
	}
	return s.Status
}

// CheckoutLine is one product of a session, with its quantity and price as
// the catalog had it when the line was last priced.
type CheckoutLine struct {
	ID          string      `json:"id"`
	ProductID   string      `json:"product_id"`
	Name        string      `json:"name"`
	SKU         string      `json:"sku"`
	Fulfillment Fulfillment `json:"fulfillment"`
	Quantity    int64       `json:"quantity"`
	UnitAmount  int64       `json:"unit_amount"`
	Total       int64       `json:"total"`
}

// FulfillmentOption is a way the session's lines of one fulfillment kind
// reach the buyer, and what it costs.
type FulfillmentOption struct {
	ID     string      `json:"id"`
	Type   Fulfillment `json:"type"`
	Title  string      `json:"title"`
	Amount int64       `json:"amount"`
	// LineIDs are the lines it carries.
	LineIDs []string `json:"line_ids"`
}

// CheckoutMessage is a message of the session to its buyer, as ACP's
// messages[] carries them: Type info or error, Code one of ACP's message
// codes, Param an RFC 9535 JSONPath into the session.
type CheckoutMessage struct {
	Type       string `json:"type"`
	Code       string `json:"code,omitempty"`
	Param      string `json:"param,omitempty"`
	Resolution string `json:"resolution,omitempty"`
	Content    string `json:"content"`
}

// Buyer is who the agent buys for, as the merchant sees them.
type Buyer struct {
	FirstName   string `json:"first_name,omitempty"`
	LastName    string `json:"last_name,omitempty"`
	FullName    string `json:"full_name,omitempty"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number,omitempty"`
	CustomerID  string `json:"customer_id,omitempty"`
}

// FulfillmentDetails is where and to whom shipped lines go.
type FulfillmentDetails struct {
	Name        string   `json:"name,omitempty"`
	PhoneNumber string   `json:"phone_number,omitempty"`
	Email       string   `json:"email,omitempty"`
	Address     *Address `json:"address,omitempty"`
}

// Address is a postal address (ACP's Address).
type Address struct {
	Name       string `json:"name"`
	LineOne    string `json:"line_one"`
	LineTwo    string `json:"line_two,omitempty"`
	City       string `json:"city"`
	State      string `json:"state"`
	Country    string `json:"country"`
	PostalCode string `json:"postal_code"`
	Company    string `json:"company,omitempty"`
}

// Order is what a completed session created: the merchant's order, paid by
// PaymentID (captured at completion).
type Order struct {
	ID           string    `json:"id"`
	Number       string    `json:"number"`
	PaymentID    string    `json:"payment_id"`
	PermalinkURL string    `json:"permalink_url"`
	CreatedAt    time.Time `json:"created_at"`
}

// AgentCard is a card number a user issued to one agent under one mandate:
// the way an agent presents that mandate to ACP, which carries cards only.
// The number is shown once at issue; Paybound keeps its keyed hash and its
// last four digits. A card is usable only through delegate_payment, by its
// agent, while its mandate is in force and the card itself is not revoked.
type AgentCard struct {
	ID         string    `json:"id"`
	Object     string    `json:"object"`
	MandateID  string    `json:"mandate_id"`
	AgentID    string    `json:"agent_id"`
	UserID     string    `json:"user_id"`
	NumberHash string    `json:"-"` // hex HMAC-SHA256 of the number under the card key
	Last4      string    `json:"display_last4"`
	ExpMonth   int       `json:"exp_month"`
	ExpYear    int       `json:"exp_year"`
	CreatedAt  time.Time `json:"created_at"`
	// RevokedAt is when its user revoked the card alone (the mandate and
	// its other cards stay); nil while it is not.
	RevokedAt *time.Time `json:"revoked_at"`
}

// ExpiresAt is the first instant the card is expired: the start of the
// month after its expiry month, UTC.
func (c *AgentCard) ExpiresAt() time.Time {
	return time.Date(c.ExpYear, time.Month(c.ExpMonth)+1, 1, 0, 0, 0, 0, time.UTC)
}

// ExpMonthText and ExpYearText are the expiry as card forms write it
// ("07", "2029").
func (c *AgentCard) ExpMonthText() string {
	if c.ExpMonth < 10 {
		return "0" + strconv.Itoa(c.ExpMonth)
	}
	return strconv.Itoa(c.ExpMonth)
}

func (c *AgentCard) ExpYearText() string { return strconv.Itoa(c.ExpYear) }

// VaultToken is an agent card delegated to one merchant for one checkout
// session, up to MaxAmount, until ExpiresAt: ACP's delegated payment token.
// It is used at most once; UsedBy is the payment that used it.
type VaultToken struct {
	ID                string            `json:"id"`
	CardID            string            `json:"card_id"`
	MandateID         string            `json:"mandate_id"`
	AgentID           string            `json:"agent_id"`
	UserID            string            `json:"user_id"`
	MerchantID        string            `json:"merchant_id"`
	CheckoutSessionID string            `json:"checkout_session_id"`
	MaxAmount         int64             `json:"max_amount"`
	Currency          string            `json:"currency"`
	ExpiresAt         time.Time         `json:"expires_at"`
	Metadata          map[string]string `json:"metadata"`
	UsedBy            string            `json:"used_by,omitempty"`
	CreatedAt         time.Time         `json:"created_at"`
}

// CheckoutCompletion records that a session was paid, once: a store writes
// it only as a new row, so that a second completion of a session, or a
// second use of a token, fails the batch that tries it (even from another
// process sharing the store).
type CheckoutCompletion struct {
	SessionID string
	TokenID   string
	PaymentID string
	CreatedAt time.Time
}

// ProductFilter selects products to list, newest first.
type ProductFilter struct {
	MerchantID      string
	IncludeArchived bool
	StartingAfter   string
	Limit           int
}
