package checkout

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// The Agentic Commerce Protocol's wire forms (release 2026-04-17) of the
// checkout: what the ACP REST adapter and the MCP binding decode requests
// into and render results with, so that both speak the same JSON.

// ACPVersion is the ACP release Paybound implements.
const ACPVersion = "2026-04-17"

// ACPVersions are the API-Version values Paybound answers, newest first.
var ACPVersions = []string{ACPVersion}

// HandlerID is the ACP payment handler of Paybound's agent cards.
const HandlerID = "paybound_agent_card"

// --- requests ---

// ItemIn is ACP's Item: a product ID; each Item is one unit (ACP's Item has
// no quantity), so that an ID named twice is bought twice.
type ItemIn struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	UnitAmount *int64 `json:"unit_amount,omitempty"`
}

// BuyerIn is ACP's Buyer. The fields Paybound keeps are the buyer's
// contact; company, loyalty and tax exemption are accepted and not kept.
type BuyerIn struct {
	FirstName            string          `json:"first_name,omitempty"`
	LastName             string          `json:"last_name,omitempty"`
	FullName             string          `json:"full_name,omitempty"`
	Email                string          `json:"email"`
	PhoneNumber          string          `json:"phone_number,omitempty"`
	CustomerID           string          `json:"customer_id,omitempty"`
	AccountType          string          `json:"account_type,omitempty"`
	AuthenticationStatus string          `json:"authentication_status,omitempty"`
	Company              json.RawMessage `json:"company,omitempty"`
	Loyalty              json.RawMessage `json:"loyalty,omitempty"`
	TaxExemption         json.RawMessage `json:"tax_exemption,omitempty"`
}

func (b *BuyerIn) buyer() *pb.Buyer {
	if b == nil {
		return nil
	}
	return &pb.Buyer{FirstName: b.FirstName, LastName: b.LastName, FullName: b.FullName, Email: b.Email, PhoneNumber: b.PhoneNumber, CustomerID: b.CustomerID}
}

// SelectedIn is ACP's SelectedFulfillmentOption.
type SelectedIn struct {
	Type     string   `json:"type"`
	OptionID string   `json:"option_id"`
	ItemIDs  []string `json:"item_ids"`
}

// CreateRequest is ACP's CheckoutSessionCreateRequest. Attribution,
// discounts, locale and metadata are accepted and not acted on.
type CreateRequest struct {
	Buyer                *BuyerIn               `json:"buyer,omitempty"`
	LineItems            []ItemIn               `json:"line_items"`
	Currency             string                 `json:"currency"`
	FulfillmentDetails   *pb.FulfillmentDetails `json:"fulfillment_details,omitempty"`
	Capabilities         json.RawMessage        `json:"capabilities,omitempty"`
	FulfillmentGroups    json.RawMessage        `json:"fulfillment_groups,omitempty"`
	AffiliateAttribution json.RawMessage        `json:"affiliate_attribution,omitempty"`
	Coupons              []string               `json:"coupons,omitempty"`
	Discounts            json.RawMessage        `json:"discounts,omitempty"`
	Locale               string                 `json:"locale,omitempty"`
	Timezone             string                 `json:"timezone,omitempty"`
	QuoteID              string                 `json:"quote_id,omitempty"`
	Metadata             map[string]any         `json:"metadata,omitempty"`
	OrderNotes           string                 `json:"order_notes,omitempty"`
}

// Params is the request as the checkout's operations take it. Currency is
// ACP's lower-case code; Paybound's is upper case.
func (r *CreateRequest) Params() (SessionParams, error) {
	if r.Capabilities == nil {
		return SessionParams{}, pb.Errorf(pb.ErrParameterMissing, "capabilities", "capabilities is required (it may be {})")
	}
	cur, err := acpCurrency(r.Currency, "currency")
	if err != nil {
		return SessionParams{}, err
	}
	lines, err := linesOf(r.LineItems)
	return SessionParams{Currency: cur, Lines: lines, Buyer: r.Buyer.buyer(), FulfillmentDetails: r.FulfillmentDetails}, err
}

// UpdateRequest is ACP's CheckoutSessionUpdateRequest.
type UpdateRequest struct {
	Buyer                      *BuyerIn               `json:"buyer,omitempty"`
	LineItems                  []ItemIn               `json:"line_items,omitempty"`
	FulfillmentDetails         *pb.FulfillmentDetails `json:"fulfillment_details,omitempty"`
	FulfillmentGroups          json.RawMessage        `json:"fulfillment_groups,omitempty"`
	SelectedFulfillmentOptions []SelectedIn           `json:"selected_fulfillment_options,omitempty"`
	Coupons                    []string               `json:"coupons,omitempty"`
	Discounts                  json.RawMessage        `json:"discounts,omitempty"`
	OrderNotes                 string                 `json:"order_notes,omitempty"`
}

// Params is the update as UpdateSession takes it.
func (r *UpdateRequest) Params() (SessionParams, error) {
	p := SessionParams{Buyer: r.Buyer.buyer(), FulfillmentDetails: r.FulfillmentDetails}
	if r.LineItems != nil {
		lines, err := linesOf(r.LineItems)
		if err != nil {
			return p, err
		}
		p.Lines = lines
	}
	for _, o := range r.SelectedFulfillmentOptions {
		p.Selected = append(p.Selected, o.OptionID)
	}
	return p, nil
}

// CompleteRequest is ACP's CheckoutSessionCompleteRequest.
type CompleteRequest struct {
	Buyer                *BuyerIn        `json:"buyer,omitempty"`
	PaymentData          *PaymentDataIn  `json:"payment_data"`
	AuthenticationResult json.RawMessage `json:"authentication_result,omitempty"`
	AffiliateAttribution json.RawMessage `json:"affiliate_attribution,omitempty"`
	RiskSignals          json.RawMessage `json:"risk_signals,omitempty"`
	MarketingConsents    json.RawMessage `json:"marketing_consents,omitempty"`
	OrderNotes           string          `json:"order_notes,omitempty"`
}

// PaymentDataIn is ACP's PaymentData.
type PaymentDataIn struct {
	HandlerID  string `json:"handler_id"`
	Instrument *struct {
		Type       string `json:"type"`
		Credential *struct {
			Type  string `json:"type"`
			Token string `json:"token"`
		} `json:"credential"`
	} `json:"instrument"`
	BillingAddress      *pb.Address `json:"billing_address,omitempty"`
	PurchaseOrderNumber string      `json:"purchase_order_number,omitempty"`
	PaymentTerms        string      `json:"payment_terms,omitempty"`
	DueDate             string      `json:"due_date,omitempty"`
	ApprovalRequired    *bool       `json:"approval_required,omitempty"`
}

// Params is the completion as CompleteSession takes it: the token of
// Paybound's handler. A purchase order (B2B terms) is not a way to pay
// here.
func (r *CompleteRequest) Params() (CompleteParams, error) {
	pd := r.PaymentData
	switch {
	case pd == nil:
		return CompleteParams{}, pb.Errorf(pb.ErrParameterMissing, "payment_data", "payment_data is required")
	case pd.Instrument == nil || pd.Instrument.Credential == nil:
		return CompleteParams{}, pb.Errorf(pb.ErrParameterMissing, "payment_data.instrument.credential", "payment_data.instrument.credential is required: {\"type\":\"spt\",\"token\":\"vt_…\"} from delegate_payment")
	case pd.HandlerID != HandlerID:
		return CompleteParams{}, pb.Errorf(pb.ErrParameterInvalid, "payment_data.handler_id", "handler_id must be %s, the only payment handler this merchant offers", HandlerID)
	}
	return CompleteParams{Token: pd.Instrument.Credential.Token, Buyer: r.Buyer.buyer()}, nil
}

// DelegateRequest is ACP's DelegatePaymentRequest.
type DelegateRequest struct {
	PaymentMethod *struct {
		Type                   string            `json:"type"`
		CardNumberType         string            `json:"card_number_type"`
		Number                 string            `json:"number"`
		ExpMonth               string            `json:"exp_month,omitempty"`
		ExpYear                string            `json:"exp_year,omitempty"`
		Name                   string            `json:"name,omitempty"`
		CVC                    string            `json:"cvc,omitempty"`
		Cryptogram             string            `json:"cryptogram,omitempty"`
		ECIValue               string            `json:"eci_value,omitempty"`
		ChecksPerformed        []string          `json:"checks_performed,omitempty"`
		IIN                    string            `json:"iin,omitempty"`
		DisplayCardFundingType string            `json:"display_card_funding_type"`
		DisplayWalletType      string            `json:"display_wallet_type,omitempty"`
		DisplayBrand           string            `json:"display_brand,omitempty"`
		DisplayLast4           string            `json:"display_last4,omitempty"`
		Metadata               map[string]string `json:"metadata"`
		Virtual                *bool             `json:"virtual,omitempty"`
	} `json:"payment_method"`
	Allowance *struct {
		Reason            string `json:"reason"`
		MaxAmount         *int64 `json:"max_amount"`
		Currency          string `json:"currency"`
		CheckoutSessionID string `json:"checkout_session_id"`
		MerchantID        string `json:"merchant_id"`
		ExpiresAt         string `json:"expires_at"`
	} `json:"allowance"`
	BillingAddress *pb.Address       `json:"billing_address,omitempty"`
	RiskSignals    []json.RawMessage `json:"risk_signals"`
	Metadata       map[string]string `json:"metadata"`
}

// Params is the request as DelegatePayment takes it (without the
// signature, which the transport adds).
func (r *DelegateRequest) Params() (DelegateParams, error) {
	pm, a := r.PaymentMethod, r.Allowance
	switch {
	case pm == nil:
		return DelegateParams{}, pb.Errorf(pb.ErrCardInvalid, "payment_method", "payment_method is required")
	case pm.Type != "card":
		return DelegateParams{}, pb.Errorf(pb.ErrCardInvalid, "payment_method.type", "payment_method.type must be card")
	case pm.CardNumberType != "fpan" && pm.CardNumberType != "network_token":
		return DelegateParams{}, pb.Errorf(pb.ErrCardInvalid, "payment_method.card_number_type", "card_number_type must be fpan or network_token")
	case pm.Number == "":
		return DelegateParams{}, pb.Errorf(pb.ErrCardInvalid, "payment_method.number", "payment_method.number is required")
	case a == nil:
		return DelegateParams{}, pb.Errorf(pb.ErrAllowanceInvalid, "allowance", "allowance is required")
	case a.MaxAmount == nil:
		return DelegateParams{}, pb.Errorf(pb.ErrAllowanceInvalid, "allowance.max_amount", "allowance.max_amount is required")
	case a.CheckoutSessionID == "" || a.MerchantID == "":
		return DelegateParams{}, pb.Errorf(pb.ErrAllowanceInvalid, "allowance", "allowance.checkout_session_id and allowance.merchant_id are required")
	case r.RiskSignals == nil || r.Metadata == nil:
		return DelegateParams{}, pb.Errorf(pb.ErrParameterMissing, "metadata", "risk_signals and metadata are required (they may be empty)")
	}
	cur, err := acpCurrency(a.Currency, "allowance.currency")
	if err != nil {
		return DelegateParams{}, err
	}
	exp, err := time.Parse(time.RFC3339, a.ExpiresAt)
	if err != nil {
		return DelegateParams{}, pb.Errorf(pb.ErrAllowanceInvalid, "allowance.expires_at", "allowance.expires_at must be an RFC 3339 time such as 2026-04-17T12:00:00Z")
	}
	return DelegateParams{Number: pm.Number, ExpMonth: pm.ExpMonth, ExpYear: pm.ExpYear, Metadata: r.Metadata,
		Allowance: Allowance{Reason: a.Reason, MaxAmount: *a.MaxAmount, Currency: cur, CheckoutSessionID: a.CheckoutSessionID,
			MerchantID: a.MerchantID, ExpiresAt: exp}}, nil
}

// acpCurrency reads ACP's lower-case ISO 4217 code.
func acpCurrency(c, param string) (string, error) {
	if c == "" {
		return "", pb.Errorf(pb.ErrParameterMissing, param, "%s is required: a lower-case ISO 4217 code such as usd", param)
	}
	if strings.ToLower(c) != c {
		return "", pb.Errorf(pb.ErrInvalidCurrency, param, "%s must be a lower-case ISO 4217 code such as usd (ACP's form)", param)
	}
	up := strings.ToUpper(c)
	if err := pb.ValidateCurrency(up, param); err != nil {
		return "", pb.Errorf(pb.ErrInvalidCurrency, param, "%.20q is not an ISO 4217 currency code; use a lower-case code such as usd", c)
	}
	return up, nil
}

// linesOf turns ACP items (one unit each) into lines, a product's units
// added up, in the order each product first appears.
func linesOf(items []ItemIn) ([]LineParams, error) {
	if len(items) == 0 {
		return nil, pb.Errorf(pb.ErrParameterMissing, "line_items", "line_items needs at least one item")
	}
	if len(items) > pb.MaxSessionLines*10 {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "line_items", "line_items has %d entries; at most %d", len(items), pb.MaxSessionLines*10)
	}
	var out []LineParams
	idx := map[string]int{}
	for i, it := range items {
		if it.ID == "" {
			return nil, pb.Errorf(pb.ErrParameterMissing, fmt.Sprintf("line_items[%d].id", i), "each item needs the id of a product")
		}
		if j, ok := idx[it.ID]; ok {
			out[j].Quantity++
			continue
		}
		idx[it.ID] = len(out)
		out = append(out, LineParams{ProductID: it.ID, Quantity: 1})
	}
	return out, nil
}

// --- responses ---

// SessionJSON is ACP's CheckoutSession (CheckoutSessionWithOrder once
// completed).
type SessionJSON struct {
	ID                         string                 `json:"id"`
	Protocol                   map[string]string      `json:"protocol"`
	Capabilities               json.RawMessage        `json:"capabilities"`
	Buyer                      *pb.Buyer              `json:"buyer,omitempty"`
	Status                     string                 `json:"status"`
	Currency                   string                 `json:"currency"`
	LineItems                  []lineItemJSON         `json:"line_items"`
	FulfillmentDetails         *pb.FulfillmentDetails `json:"fulfillment_details,omitempty"`
	FulfillmentOptions         []optionJSON           `json:"fulfillment_options"`
	SelectedFulfillmentOptions []SelectedIn           `json:"selected_fulfillment_options"`
	Totals                     []totalJSON            `json:"totals"`
	Messages                   []messageJSON          `json:"messages"`
	Links                      []any                  `json:"links"`
	CreatedAt                  string                 `json:"created_at"`
	UpdatedAt                  string                 `json:"updated_at"`
	ExpiresAt                  string                 `json:"expires_at"`
	ContinueURL                string                 `json:"continue_url,omitempty"`
	Metadata                   map[string]any         `json:"metadata"`
	Order                      *OrderJSON             `json:"order,omitempty"`
}

type lineItemJSON struct {
	ID         string      `json:"id"`
	Item       itemJSON    `json:"item"`
	Quantity   int64       `json:"quantity"`
	Name       string      `json:"name"`
	UnitAmount int64       `json:"unit_amount"`
	ProductID  string      `json:"product_id"`
	SKU        string      `json:"sku,omitempty"`
	Totals     []totalJSON `json:"totals"`
}

type itemJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	UnitAmount int64  `json:"unit_amount"`
}

type optionJSON struct {
	Type   string      `json:"type"`
	ID     string      `json:"id"`
	Title  string      `json:"title"`
	Totals []totalJSON `json:"totals"`
}

type totalJSON struct {
	Type        string `json:"type"`
	DisplayText string `json:"display_text"`
	Amount      int64  `json:"amount"`
}

type messageJSON struct {
	Type        string `json:"type"`
	Code        string `json:"code,omitempty"`
	Param       string `json:"param,omitempty"`
	Resolution  string `json:"resolution,omitempty"`
	ContentType string `json:"content_type"`
	Content     string `json:"content"`
}

// OrderJSON is ACP's Order.
type OrderJSON struct {
	Type              string      `json:"type,omitempty"`
	ID                string      `json:"id"`
	CheckoutSessionID string      `json:"checkout_session_id"`
	OrderNumber       string      `json:"order_number"`
	PermalinkURL      string      `json:"permalink_url"`
	Status            string      `json:"status"`
	Totals            []totalJSON `json:"totals"`
}

// OrderEventJSON is ACP's webhook event about an order.
type OrderEventJSON struct {
	Type string    `json:"type"`
	Data OrderJSON `json:"data"`
}

// Wire is sess as ACP shows it. pay, when given, is the session's payment
// as it is now: its refunds show in the order's amount_refunded.
func (s *Service) Wire(sess *pb.CheckoutSession, pay *pb.Payment) *SessionJSON {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	w := &SessionJSON{ID: sess.ID, Protocol: map[string]string{"version": ACPVersion}, Capabilities: s.capabilities(sess),
		Buyer: sess.Buyer, Status: string(sess.Status), Currency: strings.ToLower(sess.Currency), FulfillmentDetails: sess.FulfillmentDetails,
		LineItems: []lineItemJSON{}, FulfillmentOptions: []optionJSON{}, SelectedFulfillmentOptions: []SelectedIn{},
		Messages: []messageJSON{}, Links: []any{}, CreatedAt: ts(sess.CreatedAt), UpdatedAt: ts(sess.UpdatedAt), ExpiresAt: ts(sess.ExpiresAt),
		Metadata: map[string]any{"merchant_id": sess.MerchantID, "agent_id": sess.AgentID}}
	for _, l := range sess.Lines {
		w.LineItems = append(w.LineItems, lineItemJSON{ID: l.ID, Item: itemJSON{ID: l.ProductID, Name: l.Name, UnitAmount: l.UnitAmount},
			Quantity: l.Quantity, Name: l.Name, UnitAmount: l.UnitAmount, ProductID: l.ProductID, SKU: l.SKU,
			Totals: []totalJSON{{"items_base_amount", "Base amount", l.Total}, {"subtotal", "Subtotal", l.Total}, {"total", "Total", l.Total}}})
	}
	for _, o := range sess.Options {
		w.FulfillmentOptions = append(w.FulfillmentOptions, optionJSON{Type: string(o.Type), ID: o.ID, Title: o.Title,
			Totals: []totalJSON{{"total", o.Title, o.Amount}}})
		w.SelectedFulfillmentOptions = append(w.SelectedFulfillmentOptions, SelectedIn{Type: string(o.Type), OptionID: o.ID, ItemIDs: o.LineIDs})
	}
	w.Totals = []totalJSON{{"items_base_amount", "Item(s) total", sess.ItemsAmount}, {"subtotal", "Subtotal", sess.ItemsAmount}}
	if len(sess.Options) > 0 {
		w.Totals = append(w.Totals, totalJSON{"fulfillment", "Fulfillment", sess.FulfillmentAmount})
	}
	w.Totals = append(w.Totals, totalJSON{"total", "Total", sess.Total})
	for _, m := range sess.Messages {
		w.Messages = append(w.Messages, messageJSON{Type: m.Type, Code: m.Code, Param: m.Param, Resolution: m.Resolution, ContentType: "plain", Content: m.Content})
	}
	if sess.Status == pb.CheckoutPendingApproval {
		w.ContinueURL = sess.ConfirmationURL
	}
	if sess.PaymentID != "" {
		w.Metadata["payment_id"] = sess.PaymentID
	}
	if sess.DeclinedPaymentID != "" {
		w.Metadata["declined_payment_id"] = sess.DeclinedPaymentID
	}
	if sess.Order != nil {
		o := orderJSON(sess, pay)
		w.Order = &o
	}
	return w
}

// orderJSON is sess's order as ACP shows it.
func orderJSON(sess *pb.CheckoutSession, pay *pb.Payment) OrderJSON {
	o := OrderJSON{ID: sess.Order.ID, CheckoutSessionID: sess.ID, OrderNumber: sess.Order.Number, PermalinkURL: sess.Order.PermalinkURL,
		Status: "confirmed", Totals: []totalJSON{{"total", "Total", sess.Total}}}
	if pay != nil {
		o.Totals = append(o.Totals, totalJSON{"amount_refunded", "Refunded", pay.AmountRefunded})
		if pay.AmountRefunded == pay.AmountCaptured && pay.AmountRefunded > 0 {
			o.Status = "canceled"
		}
	}
	return o
}

// OrderEvent is ACP's webhook event typ ("order_create", "order_update")
// about sess's order.
func OrderEvent(typ string, sess *pb.CheckoutSession, pay *pb.Payment) *OrderEventJSON {
	o := orderJSON(sess, pay)
	o.Type = "order"
	return &OrderEventJSON{Type: typ, Data: o}
}

// capabilities is what the merchant offers the session: Paybound's agent
// card handler, which requires delegate_payment, and no interventions. It
// depends on the merchant alone, so each merchant's is encoded once (for
// the first maxCachedMerchants merchants).
func (s *Service) capabilities(sess *pb.CheckoutSession) json.RawMessage {
	if b, ok := s.caps.Load(sess.MerchantID); ok {
		return b.(json.RawMessage)
	}
	b, _ := json.Marshal(capabilitiesOf(sess.MerchantID, s.cfg.BaseURL))
	if s.nCaps.Add(1) <= maxCachedMerchants {
		s.caps.Store(sess.MerchantID, json.RawMessage(b))
	}
	return b
}

// maxCachedMerchants bounds the merchants whose capabilities are kept.
const maxCachedMerchants = 10_000

func capabilitiesOf(merchantID, baseURL string) map[string]any {
	return map[string]any{
		"payment": map[string]any{"handlers": []any{map[string]any{
			"id": HandlerID, "name": "dev.acp.tokenized.card", "display_name": "Paybound agent card", "version": ACPVersion,
			"spec": "https://acp.dev/handlers/tokenized.card", "requires_delegate_payment": true, "requires_pci_compliance": false,
			"psp": "paybound", "config_schema": "https://acp.dev/schemas/handlers/tokenized.card/config.json",
			"instrument_schemas": []string{"https://acp.dev/schemas/handlers/tokenized.card/instrument.json"},
			"config": map[string]any{"merchant_id": merchantID, "psp": "paybound", "card_iin": CardIIN,
				"delegate_payment_url": baseURL + "/agentic_commerce/delegate_payment"},
		}}},
		"interventions": map[string]any{"supported": []string{}, "required": []string{}, "enforcement": "optional"},
	}
}

// TokenJSON is ACP's DelegatePaymentResponse.
type TokenJSON struct {
	ID       string            `json:"id"`
	Created  string            `json:"created"`
	Metadata map[string]string `json:"metadata"`
}

// TokenWire is t as delegate_payment answers it.
func TokenWire(t *pb.VaultToken) *TokenJSON {
	return &TokenJSON{ID: t.ID, Created: t.CreatedAt.UTC().Format(time.RFC3339), Metadata: t.Metadata}
}
