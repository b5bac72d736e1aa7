package paybound

import (
	"time"
)

// PaymentStatus is where a payment is in its life; see CanTransition.
type PaymentStatus string

const (
	StatusRequiresConfirmation PaymentStatus = "requires_confirmation"
	StatusAuthorized           PaymentStatus = "authorized"
	StatusCaptured             PaymentStatus = "captured"
	StatusRefunded             PaymentStatus = "refunded"
	StatusCanceled             PaymentStatus = "canceled"
	StatusExpired              PaymentStatus = "expired"
	StatusDeclined             PaymentStatus = "declined"
)

// transitions lists, for each status, the statuses a payment may move to.
// "" is the state before the payment exists. A captured payment stays
// captured through partial refunds and becomes refunded when the whole
// captured amount has been returned.
var transitions = map[PaymentStatus][]PaymentStatus{
	"":                         {StatusRequiresConfirmation, StatusAuthorized, StatusCaptured, StatusDeclined},
	StatusRequiresConfirmation: {StatusAuthorized, StatusCaptured, StatusDeclined, StatusCanceled, StatusExpired},
	StatusAuthorized:           {StatusCaptured, StatusCanceled, StatusExpired},
	StatusCaptured:             {StatusCaptured, StatusRefunded},
}

// AllPaymentStatuses lists every status, for exhaustive tests and docs.
var AllPaymentStatuses = []PaymentStatus{StatusRequiresConfirmation, StatusAuthorized,
	StatusCaptured, StatusRefunded, StatusCanceled, StatusExpired, StatusDeclined}

// CanTransition reports whether a payment in status from may move to to.
// Terminal statuses (refunded, canceled, expired, declined) allow nothing.
func CanTransition(from, to PaymentStatus) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// CaptureMethod says whether a hold is captured at once or by the merchant.
type CaptureMethod string

const (
	CaptureAutomatic CaptureMethod = "automatic"
	CaptureManual    CaptureMethod = "manual"
)

// Hold expiry bounds: a hold that is never captured is released after
// DefaultAuthorizationTTL unless the payer asked for another time within
// [MinAuthorizationTTL, MaxAuthorizationTTL].
const (
	DefaultAuthorizationTTL = 7 * 24 * time.Hour
	MinAuthorizationTTL     = time.Minute
	MaxAuthorizationTTL     = 30 * 24 * time.Hour
	// ExpirySkew is how far before MinAuthorizationTTL an asked expiry is
	// still taken, as MinAuthorizationTTL from the request's arrival: a
	// client that computed "in 1 minute" on its own clock, to the second,
	// and sent it over a network, asks for a little less.
	ExpirySkew = 5 * time.Second
)

// Metadata limits, as Stripe's.
const (
	MaxMetadataKeys        = 20
	MaxMetadataKeyLength   = 40
	MaxMetadataValueLength = 500
	MaxDescriptionLength   = 1000
)

// Metadata keys Paybound sets on the payments it makes for a capability,
// naming what the payment was made through; a caller may not set them
// (CheckCallerMetadata), so that they can be believed.
const (
	MetadataCheckoutSession = "checkout_session_id" // the ACP checkout session
	MetadataPaymentToken    = "payment_token"       // its delegate_payment token
)

// ReservedMetadataKeys are the metadata keys only Paybound sets.
var ReservedMetadataKeys = []string{MetadataPayLink, MetadataCheckoutSession, MetadataPaymentToken}

// CheckCallerMetadata refuses metadata a caller sent that uses a key of
// ReservedMetadataKeys, naming the key in the error's param.
func CheckCallerMetadata(md map[string]string) error {
	for _, k := range ReservedMetadataKeys {
		if _, ok := md[k]; ok {
			return Errorf(ErrParameterInvalid, "metadata."+k, "metadata key %q is Paybound's: it names what a payment was made through (a payment link, a checkout session), and only Paybound sets it", k)
		}
	}
	return nil
}

// Payment is a payer's payment to a merchant. Amounts are minor units of
// Currency. Invariant: 0 <= AmountRefunded <= AmountCaptured <= Amount.
type Payment struct {
	ID                     string            `json:"id"`
	Object                 string            `json:"object"`
	Status                 PaymentStatus     `json:"status"`
	Amount                 int64             `json:"amount"`
	AmountCaptured         int64             `json:"amount_captured"`
	AmountRefunded         int64             `json:"amount_refunded"`
	FeeAmount              int64             `json:"fee_amount"`
	Currency               string            `json:"currency"`
	MerchantID             string            `json:"merchant_id"`
	PayerID                string            `json:"payer_id"`
	AgentID                OptString         `json:"agent_id"`
	MandateID              OptString         `json:"mandate_id"`
	Description            string            `json:"description"`
	CaptureMethod          CaptureMethod     `json:"capture_method"`
	AuthorizationExpiresAt *time.Time        `json:"authorization_expires_at"`
	Metadata               map[string]string `json:"metadata"`
	CreatedAt              time.Time         `json:"created_at"`
	// Assurance is how the payer's side proved itself: "signed" (an agent's
	// signed request), "bearer" (an agent's bearer key) or "user".
	Assurance    Assurance     `json:"assurance"`
	DeclineCode  Code          `json:"decline_code,omitempty"`
	Confirmation *Confirmation `json:"confirmation,omitempty"`
	// Risk is the risk engine's assessment of the attempt (nil when it was
	// not assessed: an unknown merchant).
	Risk *Risk `json:"risk,omitempty"`

	// HoldID is the ledger's pending transfer that holds the funds, 0 if none.
	HoldID int64 `json:"-"`
	// FeeRefunded is the part of FeeAmount returned to the payer so far.
	FeeRefunded int64 `json:"-"`
	// LogHead is the leaf hash of the payment's latest log entry, which its
	// next entry names as prev (zero before the first).
	LogHead [32]byte `json:"-"`
	// Version counts the payment's committed changes (1 once created). A
	// store shared by several processes refuses a change made from an
	// out-of-date version.
	Version int64 `json:"-"`
}

// Assurance says how a request was authenticated.
type Assurance string

const (
	AssuranceSigned Assurance = "signed"
	AssuranceBearer Assurance = "bearer"
	AssuranceUser   Assurance = "user"
)

// Confirmation is the user's pending approval of a payment (step-up).
type Confirmation struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MaxConfirmationCodeFailures is how many wrong one-time codes a
// confirmation takes before it is locked against codes: then only the
// user's passkey approves it (or the agent asks again). With 6-digit codes,
// 5 guesses succeed with odds of 1 in 200,000.
const MaxConfirmationCodeFailures = 5

// PrefixConfirmation is the ID prefix of confirmations.
const PrefixConfirmation = "cfm_"

// ConfirmationTTL is how long a user has to approve a payment.
const ConfirmationTTL = 15 * time.Minute

// NewConfirmation returns the confirmation of a payment asked at now.
func NewConfirmation(now time.Time) *Confirmation {
	id := NewID(PrefixConfirmation, now)
	return &Confirmation{ID: id, URL: "/v1/confirmations/" + id, ExpiresAt: now.Add(ConfirmationTTL).UTC().Truncate(time.Second)}
}

// ConfirmationColumns and SetConfirmation convert a payment's confirmation
// to and from how stores keep it: an ID ("" for none) and an expiry in Unix
// seconds.
func (p *Payment) ConfirmationColumns() (id string, expires *int64) {
	if p.Confirmation == nil {
		return "", nil
	}
	e := p.Confirmation.ExpiresAt.Unix()
	return p.Confirmation.ID, &e
}

// SetConfirmation is the reverse of ConfirmationColumns.
func (p *Payment) SetConfirmation(id string, expires *int64) {
	p.Confirmation = nil
	if id != "" && expires != nil {
		p.Confirmation = &Confirmation{ID: id, URL: "/v1/confirmations/" + id, ExpiresAt: time.Unix(*expires, 0).UTC()}
	}
}

// Refund returns captured money to the payer.
type Refund struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	PaymentID string    `json:"payment_id"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	Reason    string    `json:"reason,omitempty"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// Topup funds a user's wallet from the sandbox funding rail.
type Topup struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	UserID    string    `json:"user_id"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// Balance is one currency of a wallet or merchant account, in minor units.
// Available is what can be spent now; Pending is held by open authorizations
// (for a payer) or awaiting capture (for a merchant).
type Balance struct {
	Currency  string `json:"currency"`
	Available int64  `json:"available"`
	Pending   int64  `json:"pending"`
}
