package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// The Agentic Commerce Protocol (docs/acp.md): an agent's checkout at a
// merchant, /acp/{merchant_id}/checkout_sessions, and Paybound's
// delegate_payment as the PSP. These calls speak ACP's wire, not /v1's:
// every request carries API-Version (ACPVersion) and a Request-Id, every
// POST an Idempotency-Key (fresh per call unless WithIdempotencyKey gives
// one; ACP scopes a key to the caller and the endpoint), currencies are
// lower case on the wire, and errors come back as *ACPError.

// ACPVersion is the ACP release these calls speak (the API-Version header).
const ACPVersion = "2026-04-17"

// ACPHandlerID is the payment handler of Paybound's agent cards, the one a
// session completed through Paybound offers.
const ACPHandlerID = "paybound_agent_card"

// MaxCheckoutUnits bounds the units of one session's items: ACP's Item has
// no quantity, so each unit is one line_items entry, and the server takes at
// most this many entries.
const MaxCheckoutUnits = 1000

// DefaultAllowanceTTL is how long a delegated payment token stays usable
// when DelegatePaymentParams.ExpiresAt is zero.
const DefaultAllowanceTTL = 15 * time.Minute

// WithDelegationKey makes DelegatePayment sign delegate_payment's Signature
// with key, the agent's registered Ed25519 key, while the Client
// authenticates with its bearer key. A Client built WithAgentKey signs with
// that key already and needs no other.
func WithDelegationKey(key ed25519.PrivateKey) Option {
	return func(c *Client) { c.delegationKey = key }
}

// ACPError is an error answer of an ACP endpoint, in ACP's shape. Code is
// Paybound's precise code (checkout_session_state, product_unavailable,
// payment_token_invalid, …; delegate_payment's refusals of the card or the
// allowance are invalid_card, the message saying which), so errors.As
// and paybound.ErrorCode work on it as on the REST API's errors: it
// unwraps to a *paybound.Error with that code.
type ACPError struct {
	// Status is the HTTP status (405 for a session that cannot be
	// canceled, as ACP says).
	Status int `json:"-"`
	// Type is ACP's error type: invalid_request, processing_error,
	// service_unavailable or rate_limit_exceeded.
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Param is the field at fault as an RFC 9535 JSONPath
	// ($.line_items[0].id), or a header's name (Idempotency-Key).
	Param string `json:"param,omitempty"`
	// SupportedVersions lists the API-Versions the server speaks, on an
	// unsupported_api_version error.
	SupportedVersions []string `json:"supported_versions,omitempty"`
	// RequestID is the Request-Id the request was sent with.
	RequestID string `json:"-"`
}

func (e *ACPError) Error() string {
	s := fmt.Sprintf("ACP %d %s: %s: %s", e.Status, e.Type, e.Code, e.Message)
	if e.Param != "" {
		s += " (param " + e.Param + ")"
	}
	return s
}

// Unwrap is the error as a *paybound.Error: its code, its message, and the
// param without JSONPath's "$." prefix.
func (e *ACPError) Unwrap() error {
	return &pb.Error{Code: pb.Code(e.Code), Message: e.Message, Param: strings.TrimPrefix(e.Param, "$.")}
}

// acpError reads an ACP error body; ok is false when data is not one.
func acpError(resp *http.Response, data []byte) (*ACPError, bool) {
	var e ACPError
	if json.Unmarshal(data, &e) != nil || e.Code == "" || e.Type == "" {
		return nil, false
	}
	e.Status, e.RequestID = resp.StatusCode, resp.Request.Header.Get("Request-Id")
	return &e, true
}

// CheckoutItem is a product of a session and how many units of it.
type CheckoutItem struct {
	ProductID string
	// Quantity is at least 1; zero means 1.
	Quantity int
}

// CreateCheckoutSessionParams is a new session. Prices come from the
// merchant's catalog, never from the agent.
type CreateCheckoutSessionParams struct {
	// Currency is the products' ISO 4217 code, either case (ACP's wire is
	// lower case).
	Currency string
	Items    []CheckoutItem
	Buyer    *pb.Buyer
	// FulfillmentDetails is where shipped products go; a session with one
	// is not ready for payment without an address.
	FulfillmentDetails *pb.FulfillmentDetails
}

// UpdateCheckoutSessionParams changes a session: nil fields are left as
// they are; Items, when given, replace the session's items.
type UpdateCheckoutSessionParams struct {
	Items              []CheckoutItem
	Buyer              *pb.Buyer
	FulfillmentDetails *pb.FulfillmentDetails
}

// CheckoutSession is ACP's CheckoutSession (with its order once completed),
// the fields an agent acts on; Raw is the response as the server sent it.
type CheckoutSession struct {
	ID string `json:"id"`
	// Status is not_ready_for_payment, ready_for_payment, pending_approval,
	// completed, canceled or expired.
	Status pb.CheckoutStatus `json:"status"`
	// Currency is lower case, as on ACP's wire.
	Currency                   string                      `json:"currency"`
	Buyer                      *pb.Buyer                   `json:"buyer,omitempty"`
	LineItems                  []CheckoutLineItem          `json:"line_items"`
	FulfillmentDetails         *pb.FulfillmentDetails      `json:"fulfillment_details,omitempty"`
	FulfillmentOptions         []CheckoutFulfillmentOption `json:"fulfillment_options"`
	Totals                     []CheckoutTotal             `json:"totals"`
	Messages                   []CheckoutMessage           `json:"messages"`
	ContinueURL                string                      `json:"continue_url,omitempty"`
	Metadata                   map[string]any              `json:"metadata"`
	Order                      *CheckoutOrder              `json:"order,omitempty"`
	CreatedAt                  time.Time                   `json:"created_at"`
	UpdatedAt                  time.Time                   `json:"updated_at"`
	ExpiresAt                  time.Time                   `json:"expires_at"`
	Raw                        json.RawMessage             `json:"-"`
	SelectedFulfillmentOptions json.RawMessage             `json:"selected_fulfillment_options,omitempty"`
}

// CheckoutLineItem is one product of a session, priced by the catalog.
type CheckoutLineItem struct {
	ID         string          `json:"id"`
	ProductID  string          `json:"product_id"`
	Name       string          `json:"name"`
	SKU        string          `json:"sku,omitempty"`
	Quantity   int64           `json:"quantity"`
	UnitAmount int64           `json:"unit_amount"`
	Totals     []CheckoutTotal `json:"totals"`
}

// CheckoutFulfillmentOption is a way the session's products reach the buyer.
type CheckoutFulfillmentOption struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Title  string          `json:"title"`
	Totals []CheckoutTotal `json:"totals"`
}

// CheckoutTotal is one of ACP's totals (items_base_amount, subtotal,
// fulfillment, total, amount_refunded), in minor units.
type CheckoutTotal struct {
	Type        string `json:"type"`
	DisplayText string `json:"display_text"`
	Amount      int64  `json:"amount"`
}

// CheckoutMessage is a message of the session: Type info or error, Param
// the JSONPath it is about (an error message on $.fulfillment_details.address
// says the session needs an address).
type CheckoutMessage struct {
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Param   string `json:"param,omitempty"`
	Content string `json:"content"`
}

// CheckoutOrder is the order a completed session created.
type CheckoutOrder struct {
	ID                string          `json:"id"`
	CheckoutSessionID string          `json:"checkout_session_id"`
	OrderNumber       string          `json:"order_number"`
	PermalinkURL      string          `json:"permalink_url"`
	Status            string          `json:"status"`
	Totals            []CheckoutTotal `json:"totals"`
}

// Total is the session's total in minor units, or -1 when it shows none.
func (s *CheckoutSession) Total() int64 { return totalOf(s.Totals, "total") }

// ISOCurrency is the session's currency as /v1 writes it (upper case).
func (s *CheckoutSession) ISOCurrency() string { return strings.ToUpper(s.Currency) }

// PaymentID is the payment that completed the session (or waits for its
// user's approval), from its metadata; "" when there is none.
func (s *CheckoutSession) PaymentID() string { return s.meta("payment_id") }

// DeclinedPaymentID is the last payment declined for the session, if any.
func (s *CheckoutSession) DeclinedPaymentID() string { return s.meta("declined_payment_id") }

// MerchantID is the session's merchant, from its metadata.
func (s *CheckoutSession) MerchantID() string { return s.meta("merchant_id") }

func (s *CheckoutSession) meta(k string) string {
	v, _ := s.Metadata[k].(string)
	return v
}

func totalOf(ts []CheckoutTotal, typ string) int64 {
	for _, t := range ts {
		if t.Type == typ {
			return t.Amount
		}
	}
	return -1
}

// DelegatePaymentParams is an agent card delegated to one session: an
// allowance of at most MaxAmount, in Currency, at MerchantID, until
// ExpiresAt.
type DelegatePaymentParams struct {
	// Number is the agent card's number (paybound mandates card).
	Number string
	// ExpMonth ("07") and ExpYear ("2029"), when given, must match the card.
	ExpMonth, ExpYear string
	CheckoutSessionID string
	MerchantID        string
	// MaxAmount, in minor units, must cover the session's total when it is
	// completed.
	MaxAmount int64
	// Currency is ISO 4217, either case.
	Currency string
	// ExpiresAt ends the allowance; zero is DefaultAllowanceTTL from now.
	ExpiresAt time.Time
	// Metadata is kept with the token and answered back (at most 20 keys).
	Metadata       map[string]string
	BillingAddress *pb.Address
}

// DelegatedToken is the vault token delegate_payment answers, to complete
// the session with.
type DelegatedToken struct {
	ID       string            `json:"id"`
	Created  time.Time         `json:"created"`
	Metadata map[string]string `json:"metadata"`
}

// CreateCheckoutSession (an agent) opens a session at merchantID with p's
// products.
func (c *Client) CreateCheckoutSession(ctx context.Context, merchantID string, p CreateCheckoutSessionParams) (*CheckoutSession, error) {
	path, err := sessionPath(merchantID, "", "")
	if err != nil {
		return nil, err
	}
	items, err := acpItems(p.Items, true)
	if err != nil {
		return nil, err
	}
	if p.Currency == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "currency", "a currency is required, such as USD: the products' currency")
	}
	in := struct {
		Currency           string                 `json:"currency"`
		LineItems          []acpItem              `json:"line_items"`
		Buyer              *pb.Buyer              `json:"buyer,omitempty"`
		FulfillmentDetails *pb.FulfillmentDetails `json:"fulfillment_details,omitempty"`
		Capabilities       struct{}               `json:"capabilities"`
	}{Currency: strings.ToLower(p.Currency), LineItems: items, Buyer: p.Buyer, FulfillmentDetails: p.FulfillmentDetails}
	return c.sessionCall(ctx, http.MethodPost, path, in)
}

// UpdateCheckoutSession (the session's agent) changes what p sets.
func (c *Client) UpdateCheckoutSession(ctx context.Context, merchantID, sessionID string, p UpdateCheckoutSessionParams) (*CheckoutSession, error) {
	path, err := sessionPath(merchantID, sessionID, "")
	if err != nil {
		return nil, err
	}
	items, err := acpItems(p.Items, false)
	if err != nil {
		return nil, err
	}
	in := struct {
		LineItems          []acpItem              `json:"line_items,omitempty"`
		Buyer              *pb.Buyer              `json:"buyer,omitempty"`
		FulfillmentDetails *pb.FulfillmentDetails `json:"fulfillment_details,omitempty"`
	}{items, p.Buyer, p.FulfillmentDetails}
	return c.sessionCall(ctx, http.MethodPost, path, in)
}

// GetCheckoutSession (the session's agent) reads a session as it is now.
func (c *Client) GetCheckoutSession(ctx context.Context, merchantID, sessionID string) (*CheckoutSession, error) {
	path, err := sessionPath(merchantID, sessionID, "")
	if err != nil {
		return nil, err
	}
	return c.sessionCall(ctx, http.MethodGet, path, nil)
}

// CompleteCheckoutSession (the session's agent) pays the session with
// token, a vault token from DelegatePayment: the payment is made under the
// card's mandate and captured, in one commit with the session's order.
// A session is completed at most once: a second completion with another
// Idempotency-Key is a checkout_session_state error and charges nothing.
//
// A declined payment is not an error of the call: the session comes back
// ready_for_payment with a payment_declined message and
// DeclinedPaymentID; a payment above the mandate's confirm_above leaves
// it pending_approval, ContinueURL being where the user approves it.
func (c *Client) CompleteCheckoutSession(ctx context.Context, merchantID, sessionID, token string) (*CheckoutSession, error) {
	path, err := sessionPath(merchantID, sessionID, "/complete")
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, pb.Errorf(pb.ErrParameterMissing, "token", "a payment token (vt_…) from DelegatePayment is required")
	}
	type credential struct {
		Type  string `json:"type"`
		Token string `json:"token"`
	}
	type instrument struct {
		Type       string     `json:"type"`
		Credential credential `json:"credential"`
	}
	type paymentData struct {
		HandlerID  string     `json:"handler_id"`
		Instrument instrument `json:"instrument"`
	}
	in := struct {
		PaymentData paymentData `json:"payment_data"`
	}{paymentData{ACPHandlerID, instrument{"card", credential{"spt", token}}}}
	return c.sessionCall(ctx, http.MethodPost, path, in)
}

// CancelCheckoutSession (the session's agent) cancels an open session; a
// completed, canceled or expired one is a 405 checkout_session_state.
func (c *Client) CancelCheckoutSession(ctx context.Context, merchantID, sessionID string) (*CheckoutSession, error) {
	path, err := sessionPath(merchantID, sessionID, "/cancel")
	if err != nil {
		return nil, err
	}
	return c.sessionCall(ctx, http.MethodPost, path, struct{}{})
}

// DelegatePayment (an agent) delegates one of its agent cards to a session:
// the answer is a single-use vault token bound to the session, the
// merchant, the amount and the currency. No money moves.
//
// With a bearer key (the agent's API key), the request carries
// delegate_payment's Timestamp and Signature, the Ed25519 signature of
// "<Timestamp>.<body>" by the agent's key: the key given WithAgentKey,
// else WithDelegationKey. Without a bearer key, a Client built
// WithAgentKey sends an RFC 9421 signed request instead, which Paybound
// takes for ACP's pair (the two share the header's name; docs/acp.md).
// Without a key to sign with it returns a *paybound.Error of code
// signature_missing, and with only WithDelegationKey and no bearer key one
// of code parameter_missing (param api_key); either sends nothing. Each
// attempt, retries included, is signed afresh.
func (c *Client) DelegatePayment(ctx context.Context, p DelegatePaymentParams) (*DelegatedToken, error) {
	key := c.agentKey
	if key == nil {
		key = c.delegationKey
	}
	if key == nil {
		return nil, pb.Errorf(pb.ErrSignatureMissing, "Signature", "delegate_payment is signed with the agent's private key: build the client WithAgentKey or WithDelegationKey")
	}
	switch {
	case p.Number == "":
		return nil, pb.Errorf(pb.ErrParameterMissing, "number", "the agent card's number is required")
	case p.CheckoutSessionID == "" || p.MerchantID == "":
		return nil, pb.Errorf(pb.ErrParameterMissing, "checkout_session_id", "the checkout session and its merchant are required")
	case p.Currency == "":
		return nil, pb.Errorf(pb.ErrParameterMissing, "currency", "the allowance's currency is required")
	}
	exp := p.ExpiresAt
	if exp.IsZero() {
		exp = time.Now().Add(DefaultAllowanceTTL)
	}
	md := p.Metadata
	if md == nil {
		md = map[string]string{}
	}
	last4 := p.Number[max(0, len(p.Number)-4):]
	type method struct {
		Type                   string            `json:"type"`
		CardNumberType         string            `json:"card_number_type"`
		Number                 string            `json:"number"`
		ExpMonth               string            `json:"exp_month,omitempty"`
		ExpYear                string            `json:"exp_year,omitempty"`
		DisplayCardFundingType string            `json:"display_card_funding_type"`
		DisplayLast4           string            `json:"display_last4"`
		Metadata               map[string]string `json:"metadata"`
	}
	type allowance struct {
		Reason            string `json:"reason"`
		MaxAmount         int64  `json:"max_amount"`
		Currency          string `json:"currency"`
		CheckoutSessionID string `json:"checkout_session_id"`
		MerchantID        string `json:"merchant_id"`
		ExpiresAt         string `json:"expires_at"`
	}
	in := struct {
		PaymentMethod  method            `json:"payment_method"`
		Allowance      allowance         `json:"allowance"`
		BillingAddress *pb.Address       `json:"billing_address,omitempty"`
		RiskSignals    []struct{}        `json:"risk_signals"`
		Metadata       map[string]string `json:"metadata"`
	}{
		// An agent card draws on a funded wallet: prepaid, for display.
		PaymentMethod: method{Type: "card", CardNumberType: "fpan", Number: p.Number, ExpMonth: p.ExpMonth, ExpYear: p.ExpYear,
			DisplayCardFundingType: "prepaid", DisplayLast4: last4, Metadata: map[string]string{}},
		Allowance: allowance{Reason: "one_time", MaxAmount: p.MaxAmount, Currency: strings.ToLower(p.Currency),
			CheckoutSessionID: p.CheckoutSessionID, MerchantID: p.MerchantID, ExpiresAt: exp.UTC().Format(time.RFC3339)},
		BillingAddress: p.BillingAddress, RiskSignals: []struct{}{}, Metadata: md,
	}
	sign := func(h http.Header, body []byte) error {
		ts := time.Now().UTC().Format(time.RFC3339)
		h.Set("Timestamp", ts)
		h.Set("Signature", base64.StdEncoding.EncodeToString(ed25519.Sign(key, append([]byte(ts+"."), body...))))
		return nil
	}
	// ACP's Signature and RFC 9421's share the header's name: a client
	// without a bearer key signs the whole request (RFC 9421), which the
	// server takes for ACP's pair (docs/acp.md); one with a bearer key
	// sends ACP's pair.
	var out DelegatedToken
	cl := call{method: http.MethodPost, path: "/agentic_commerce/delegate_payment", in: in, out: &out, bearer: c.apiKey != ""}
	if c.apiKey == "" {
		if c.agentKey == nil {
			return nil, pb.Errorf(pb.ErrParameterMissing, "api_key", "delegate_payment needs the agent's API key beside a delegation key, or a client built WithAgentKey")
		}
		sign = nil
	}
	if err := c.acpCall(ctx, cl, sign); err != nil {
		return nil, err
	}
	return &out, nil
}

// acpItem is ACP's Item: one unit of a product.
type acpItem struct {
	ID string `json:"id"`
}

// acpItems spreads items into ACP's one-unit entries; empty is nil unless
// required.
func acpItems(items []CheckoutItem, required bool) ([]acpItem, error) {
	if len(items) == 0 {
		if required {
			return nil, pb.Errorf(pb.ErrParameterMissing, "line_items", "at least one item (a product ID) is required")
		}
		return nil, nil
	}
	n := 0
	for i, it := range items {
		q := max(it.Quantity, 1)
		switch {
		case it.ProductID == "":
			return nil, pb.Errorf(pb.ErrParameterMissing, fmt.Sprintf("line_items[%d].id", i), "each item needs a product ID (prod_…)")
		case it.Quantity < 0 || it.Quantity > MaxCheckoutUnits || n+q > MaxCheckoutUnits:
			return nil, pb.Errorf(pb.ErrParameterInvalid, fmt.Sprintf("line_items[%d].quantity", i), "a session holds 1 to %d units in all", MaxCheckoutUnits)
		}
		n += q
	}
	out := make([]acpItem, 0, n)
	for _, it := range items {
		for range max(it.Quantity, 1) {
			out = append(out, acpItem{it.ProductID})
		}
	}
	return out, nil
}

// sessionPath is /acp/{merchant}/checkout_sessions[/{id}]{suffix}, refusing
// empty IDs before they can turn into another route.
func sessionPath(merchantID, sessionID, suffix string) (string, error) {
	if merchantID == "" {
		return "", pb.Errorf(pb.ErrParameterMissing, "merchant_id", "a merchant ID (mch_…) is required")
	}
	p := "/acp/" + url.PathEscape(merchantID) + "/checkout_sessions"
	if sessionID == "" && suffix == "" {
		return p, nil
	}
	if sessionID == "" {
		return "", pb.Errorf(pb.ErrParameterMissing, "id", "a checkout session ID (cs_…) is required")
	}
	return p + "/" + url.PathEscape(sessionID) + suffix, nil
}

// sessionCall makes an ACP call answered by a session, keeping its bytes.
func (c *Client) sessionCall(ctx context.Context, method, path string, in any) (*CheckoutSession, error) {
	var raw []byte
	if err := c.acpCall(ctx, call{method: method, path: path, in: in, out: &raw}, nil); err != nil {
		return nil, err
	}
	var s CheckoutSession
	if err := json.Unmarshal(raw, &s); err != nil || s.ID == "" {
		return nil, fmt.Errorf("%w: %s %s answered a body that is not a checkout session (%v): %s", ErrBadResponse, method, path, err, snippet(raw))
	}
	s.Raw = raw
	return &s, nil
}

// acpCall sends one ACP request: API-Version and a Request-Id (one per
// call, the same on its retries) besides what every call sends; extra adds
// headers of its own to each attempt.
func (c *Client) acpCall(ctx context.Context, k call, extra func(http.Header, []byte) error) error {
	var b [12]byte
	_, _ = rand.Read(b[:])
	reqID := "req_" + hex.EncodeToString(b[:])
	k.acp = true
	k.header = func(h http.Header, body []byte) error {
		h.Set("API-Version", ACPVersion)
		h.Set("Request-Id", reqID)
		if extra != nil {
			return extra(h, body)
		}
		return nil
	}
	return c.call(ctx, k)
}
