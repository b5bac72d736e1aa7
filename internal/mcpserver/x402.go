package mcpserver

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	pb "github.com/paybound/paybound"
)

// Limits of pay_x402_resource.
const (
	// MaxX402RequestBody bounds the body the tool sends.
	MaxX402RequestBody = 32 << 10
	// MaxX402Body bounds the body the tool answers: a longer one is cut
	// (truncated true); the model reads the rest by asking again, paying
	// again, so sellers of large resources should say so in their price.
	MaxX402Body = 32 << 10
	// maxX402URL bounds the URL, as x402 bounds a resource's.
	maxX402URL = 2048
)

// X402Request is a paid request an agent asks for: url fetched with
// method and body, paid with an x402 payment of at most MaxAmount minor
// units of Currency under mandate MandateID.
type X402Request struct {
	URL         string
	Method      string
	Body        string
	ContentType string
	MaxAmount   int64
	Currency    string
	MandateID   string
}

// X402Response is pay_x402_resource's answer: the resource's answer,
// bounded, and the payment's receipt when one was settled.
type X402Response struct {
	Status       int          `json:"status" jsonschema:"the resource's HTTP status"`
	ContentType  string       `json:"content_type" jsonschema:"the answer's Content-Type"`
	Body         string       `json:"body" jsonschema:"the answer's body, at most 32 KiB (see truncated): text, or base64 when body_encoding is base64"`
	BodyEncoding string       `json:"body_encoding" jsonschema:"text (UTF-8) or base64"`
	Truncated    bool         `json:"truncated" jsonschema:"true when the body was cut at 32 KiB"`
	Paid         bool         `json:"paid" jsonschema:"true when a payment was settled for this answer"`
	Receipt      *X402Receipt `json:"receipt,omitempty" jsonschema:"the settled payment, when paid"`
}

// X402Receipt is a settled x402 payment.
type X402Receipt struct {
	PaymentID       string `json:"payment_id" jsonschema:"the Paybound payment that settled it (get_payment reads it)"`
	Network         string `json:"network" jsonschema:"the x402 network, paybound:<instance>"`
	Payer           string `json:"payer" jsonschema:"who paid, as x402 names it"`
	Amount          int64  `json:"amount" jsonschema:"integer count of the currency's minor units"`
	Currency        string `json:"currency"`
	AmountFormatted string `json:"amount_formatted"`
	AmountAtomic    string `json:"amount_atomic" jsonschema:"the amount in x402's atomic units (10^-6 of the major unit)"`
}

type payX402In struct {
	URL         string `json:"url" jsonschema:"the paid resource: an http or https URL (the server fetches only hosts its operator allows)"`
	Method      string `json:"method,omitempty" jsonschema:"GET (default), POST, PUT, PATCH, DELETE or HEAD"`
	Body        string `json:"body,omitempty" jsonschema:"the request's body, text of at most 32 KiB"`
	ContentType string `json:"content_type,omitempty" jsonschema:"the body's Content-Type (default application/json when there is a body)"`
	MaxAmount   int64  `json:"max_amount" jsonschema:"the most you will pay for this one request, in minor units of currency: a higher price is refused and nothing is paid"`
	Currency    string `json:"currency" jsonschema:"ISO 4217 code; must be the mandate's currency and the price's asset"`
	MandateID   string `json:"mandate_id" jsonschema:"the mandate to pay under, mdt_… (see wallet_summary)"`
	Key         string `json:"idempotency_key" jsonschema:"a unique string for this one purchase; if the call fails or times out, call again with the same key and arguments: it never pays twice"`
}

// checkX402 refuses a malformed pay_x402_resource call before anything is
// fetched.
func checkX402(in *payX402In) error {
	if err := CheckKey(in.Key); err != nil {
		return err
	}
	u, err := url.Parse(in.URL)
	if err != nil || len(in.URL) > maxX402URL || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return pb.Errorf(pb.ErrParameterInvalid, "url", "url must be an http or https URL of at most %d bytes, without credentials", maxX402URL)
	}
	if in.Method == "" {
		in.Method = "GET"
	}
	if len(in.Body) > MaxX402RequestBody {
		return pb.Errorf(pb.ErrParameterInvalid, "body", "body must be at most %d bytes", MaxX402RequestBody)
	}
	if in.Body != "" && (in.Method == "GET" || in.Method == "HEAD") {
		return pb.Errorf(pb.ErrParameterInvalid, "body", "a %s request has no body", in.Method)
	}
	if len(in.ContentType) > 200 {
		return pb.Errorf(pb.ErrParameterInvalid, "content_type", "content_type must be at most 200 bytes")
	}
	if err := pb.ValidateCurrency(in.Currency, "currency"); err != nil {
		return err
	}
	if err := pb.ValidateAmount(in.MaxAmount, "max_amount"); err != nil {
		return err
	}
	if in.MandateID == "" {
		return pb.Errorf(pb.ErrParameterMissing, "mandate_id", "mandate_id is required: an agent pays only under a mandate (see wallet_summary)")
	}
	if !pb.HasPrefix(in.MandateID, pb.PrefixMandate) || len(in.MandateID) > 100 {
		return pb.Errorf(pb.ErrParameterInvalid, "mandate_id", "mandate_id must be a mandate ID (mdt_…)")
	}
	return nil
}

func (s *server) payX402(ctx context.Context, b Backend, in payX402In) (X402Response, string, error) {
	if err := checkX402(&in); err != nil {
		return X402Response{}, "", err
	}
	r, err := b.PayX402(ctx, in.Key, X402Request{URL: in.URL, Method: in.Method, Body: in.Body, ContentType: in.ContentType,
		MaxAmount: in.MaxAmount, Currency: in.Currency, MandateID: in.MandateID})
	if err != nil {
		return X402Response{}, "", err
	}
	text := fmt.Sprintf("%s %s answered %d (%s", in.Method, in.URL, r.Status, r.ContentType)
	if r.Truncated {
		text += fmt.Sprintf(", body cut at %d bytes", MaxX402Body)
	}
	text += ")"
	if r.Receipt != nil {
		text += fmt.Sprintf("; paid %s, payment %s under mandate %s", r.Receipt.AmountFormatted, r.Receipt.PaymentID, in.MandateID)
	} else {
		text += "; nothing was paid"
		if r.Status >= 400 {
			text += " (a seller charges nothing for a failed answer)"
		}
	}
	text += "."
	if r.BodyEncoding == "text" && r.Body != "" {
		text += "\n\n" + r.Body
	}
	return *r, text, nil
}

// X402Price is what a 402 asks, for a refusal's message.
func X402Price(amount int64, currency string) string { return money(amount, currency).Formatted }

// Receipt builds a receipt from a settlement's fields (amount in minor
// units of currency).
func Receipt(paymentID, network, payer, atomic string, amount int64, currency string) *X402Receipt {
	return &X402Receipt{PaymentID: paymentID, Network: network, Payer: payer, Amount: amount, Currency: currency,
		AmountFormatted: money(amount, currency).Formatted, AmountAtomic: atomic}
}

// hostAllowed reports whether host (a URL's, with or without its port)
// is in allow, which holds host names, IP addresses or host:port, compared
// without case.
func hostAllowed(allow []string, u *url.URL) bool {
	for _, a := range allow {
		if strings.EqualFold(a, u.Hostname()) || strings.EqualFold(a, u.Host) || strings.EqualFold(strings.Trim(a, "[]"), u.Hostname()) {
			return true
		}
	}
	return false
}

// X402HostAllowed says whether rawURL's host is in allow (see hostAllowed).
func X402HostAllowed(allow []string, rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && hostAllowed(allow, u)
}

// PaidToolCall is a call of a seller's paid MCP tool (x402 over MCP): tool
// of the MCP server at ServerURL (streamable HTTP) with Arguments, paid
// with an x402 payment of at most MaxAmount minor units of Currency under
// mandate MandateID.
type PaidToolCall struct {
	ServerURL string
	Tool      string
	Arguments map[string]any
	MaxAmount int64
	Currency  string
	MandateID string
}

// PaidToolResult is call_paid_tool's answer: the seller's tool result,
// bounded, and the receipt when a payment was settled.
type PaidToolResult struct {
	IsError           bool         `json:"is_error" jsonschema:"true when the seller's tool failed (nothing was charged)"`
	Text              string       `json:"text" jsonschema:"the tool's text content, at most 32 KiB"`
	StructuredContent any          `json:"structured_content,omitempty" jsonschema:"the tool's structured content, when it has one of at most 32 KiB"`
	Truncated         bool         `json:"truncated" jsonschema:"true when the text was cut, or the structured content left out, at 32 KiB"`
	Paid              bool         `json:"paid" jsonschema:"true when a payment was settled for this result"`
	Receipt           *X402Receipt `json:"receipt,omitempty" jsonschema:"the settled payment, when paid"`
}

type callPaidToolIn struct {
	ServerURL string         `json:"server_url" jsonschema:"the seller's MCP endpoint (streamable HTTP), an http or https URL; the server calls only hosts its operator allows"`
	Tool      string         `json:"tool" jsonschema:"the paid tool's name"`
	Arguments map[string]any `json:"arguments,omitempty" jsonschema:"the tool's arguments"`
	MaxAmount int64          `json:"max_amount" jsonschema:"the most you will pay for this one call, in minor units of currency: a higher price is refused and nothing is paid"`
	Currency  string         `json:"currency" jsonschema:"ISO 4217 code; must be the mandate's currency and the price's asset"`
	MandateID string         `json:"mandate_id" jsonschema:"the mandate to pay under, mdt_… (see wallet_summary)"`
	Key       string         `json:"idempotency_key" jsonschema:"a unique string for this one call; if it fails or times out, call again with the same key and arguments: it never pays twice"`
}

func (s *server) callPaidTool(ctx context.Context, b Backend, in callPaidToolIn) (PaidToolResult, string, error) {
	check := payX402In{URL: in.ServerURL, Method: "POST", MaxAmount: in.MaxAmount, Currency: in.Currency, MandateID: in.MandateID, Key: in.Key}
	if err := checkX402(&check); err != nil {
		if e, ok := err.(*pb.Error); ok && e.Param == "url" {
			e.Param = "server_url"
		}
		return PaidToolResult{}, "", err
	}
	if in.Tool == "" || len(in.Tool) > 128 {
		return PaidToolResult{}, "", pb.Errorf(pb.ErrParameterInvalid, "tool", "tool must be a tool's name of 1-128 bytes")
	}
	r, err := b.CallPaidTool(ctx, in.Key, PaidToolCall{ServerURL: in.ServerURL, Tool: in.Tool, Arguments: in.Arguments,
		MaxAmount: in.MaxAmount, Currency: in.Currency, MandateID: in.MandateID})
	if err != nil {
		return PaidToolResult{}, "", err
	}
	text := fmt.Sprintf("Tool %s at %s", in.Tool, in.ServerURL)
	switch {
	case r.IsError:
		text += " failed; nothing was paid"
	case r.Receipt != nil:
		text += fmt.Sprintf(" answered; paid %s, payment %s under mandate %s", r.Receipt.AmountFormatted, r.Receipt.PaymentID, in.MandateID)
	default:
		text += " answered; nothing was paid"
	}
	if r.Truncated {
		text += fmt.Sprintf(" (cut at %d bytes)", MaxX402Body)
	}
	text += "."
	if r.Text != "" {
		text += "\n\n" + r.Text
	}
	return *r, text, nil
}
