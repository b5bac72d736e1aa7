// Package wire is x402 version 2 (HTTP 402 payments) as Paybound speaks
// it, without I/O: the wire types of the protocol, the base64 header
// codec, and the Ed25519 authorizations of Paybound's schemes. Package
// x402 (the paywall Middleware and the paying Transport) and the server's
// facilitator share it; x402 re-exports its names.
//
// On the wire, x402 v2 carries three headers (transports-v2/http.md):
// PAYMENT-REQUIRED (server → client, a PaymentRequired), PAYMENT-SIGNATURE
// (client → server, a PaymentPayload) and PAYMENT-RESPONSE (server →
// client, a SettlementResponse), each the base64 of a JSON document. x402
// v1's names (X-PAYMENT, X-PAYMENT-RESPONSE) are read too.
//
// Paybound's network is the CAIP-2 identifier "paybound:<instance>"; an
// asset is an ISO 4217 code; amounts are decimal strings of atomic units,
// 10^-6 of the currency's major unit (docs/x402.md).
package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Version is the x402 protocol version this package speaks.
const Version = 2

// The headers of x402 v2 over HTTP, and v1's names that are still read.
const (
	HeaderPaymentRequired  = "PAYMENT-REQUIRED"
	HeaderPaymentSignature = "PAYMENT-SIGNATURE"
	HeaderPaymentResponse  = "PAYMENT-RESPONSE"
	HeaderV1Payment        = "X-PAYMENT"
	HeaderV1Response       = "X-PAYMENT-RESPONSE"
)

// The schemes Paybound settles.
const (
	SchemeExact = "exact"
	SchemeUpto  = "upto"
)

// ExtensionPaymentIdentifier is the payment-identifier extension's key: the
// client's id for a payment, honoured as an idempotency key.
const ExtensionPaymentIdentifier = "payment-identifier"

// MaxHeaderBytes bounds an x402 header as this package reads it: a payload
// past it is refused without being decoded.
const MaxHeaderBytes = 16 << 10

// Resource describes what is paid for.
type Resource struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	MimeType    string `json:"mimeType,omitempty"`
}

// PaymentRequirements is one way the server accepts to be paid. Amount is
// a decimal string of atomic units; for Paybound, Asset is an ISO 4217 code
// and PayTo a merchant ID.
type PaymentRequirements struct {
	Scheme            string         `json:"scheme"`
	Network           string         `json:"network"`
	Amount            string         `json:"amount"`
	Asset             string         `json:"asset"`
	PayTo             string         `json:"payTo"`
	MaxTimeoutSeconds int            `json:"maxTimeoutSeconds"`
	Extra             map[string]any `json:"extra,omitempty"`
}

// PaymentRequired is the body of a PAYMENT-REQUIRED header.
type PaymentRequired struct {
	X402Version int                        `json:"x402Version"`
	Error       string                     `json:"error,omitempty"`
	Resource    *Resource                  `json:"resource,omitempty"`
	Accepts     []PaymentRequirements      `json:"accepts"`
	Extensions  map[string]json.RawMessage `json:"extensions,omitempty"`
}

// PaymentPayload is the body of a PAYMENT-SIGNATURE header: the
// requirements the client accepted and the scheme's payload.
type PaymentPayload struct {
	X402Version int                        `json:"x402Version"`
	Resource    *Resource                  `json:"resource,omitempty"`
	Accepted    PaymentRequirements        `json:"accepted"`
	Payload     json.RawMessage            `json:"payload"`
	Extensions  map[string]json.RawMessage `json:"extensions,omitempty"`
}

// SettlementResponse is the body of a PAYMENT-RESPONSE header and the
// answer of a facilitator's /settle. Transaction is the ledger's payment ID
// for Paybound ("" when settlement failed).
type SettlementResponse struct {
	Success     bool                       `json:"success"`
	ErrorReason string                     `json:"errorReason,omitempty"`
	Payer       string                     `json:"payer,omitempty"`
	Transaction string                     `json:"transaction"`
	Network     string                     `json:"network"`
	Amount      string                     `json:"amount,omitempty"`
	Extensions  map[string]json.RawMessage `json:"extensions,omitempty"`
}

// VerifyResponse is a facilitator's answer to /verify.
type VerifyResponse struct {
	IsValid       bool   `json:"isValid"`
	InvalidReason string `json:"invalidReason,omitempty"`
	Payer         string `json:"payer,omitempty"`
}

// FacilitatorRequest is the body of /verify and /settle.
type FacilitatorRequest struct {
	X402Version         int                 `json:"x402Version"`
	PaymentPayload      PaymentPayload      `json:"paymentPayload"`
	PaymentRequirements PaymentRequirements `json:"paymentRequirements"`
}

// SupportedKind is one (version, scheme, network) a facilitator settles.
type SupportedKind struct {
	X402Version int            `json:"x402Version"`
	Scheme      string         `json:"scheme"`
	Network     string         `json:"network"`
	Extra       map[string]any `json:"extra,omitempty"`
}

// SupportedResponse is a facilitator's answer to /supported.
type SupportedResponse struct {
	Kinds      []SupportedKind     `json:"kinds"`
	Extensions []string            `json:"extensions"`
	Signers    map[string][]string `json:"signers"`
}

// The error reasons of x402 (specification §9) that Paybound answers, and
// its own, each saying what the client can do.
const (
	ReasonInsufficientFunds    = "insufficient_funds"
	ReasonInvalidNetwork       = "invalid_network"
	ReasonInvalidPayload       = "invalid_payload"
	ReasonInvalidRequirements  = "invalid_payment_requirements"
	ReasonInvalidScheme        = "invalid_scheme"
	ReasonUnsupportedScheme    = "unsupported_scheme"
	ReasonInvalidVersion       = "invalid_x402_version"
	ReasonUnexpectedVerify     = "unexpected_verify_error"
	ReasonUnexpectedSettle     = "unexpected_settle_error"
	ReasonInvalidSignature     = "invalid_paybound_payload_signature"
	ReasonValidAfter           = "invalid_paybound_payload_authorization_valid_after"
	ReasonValidBefore          = "invalid_paybound_payload_authorization_valid_before"
	ReasonValueMismatch        = "invalid_paybound_payload_authorization_value_mismatch"
	ReasonRecipientMismatch    = "invalid_paybound_payload_recipient_mismatch"
	ReasonAuthorizationUsed    = "authorization_already_used"
	ReasonPaymentIDConflict    = "payment_identifier_conflict"
	ReasonRequiresConfirmation = "payment_requires_confirmation"
	ReasonPaymentDeclined      = "payment_declined"
	ReasonSettlementPending    = "settlement_pending"
	ReasonResponseMalformed    = "settlement_response_malformed"
)

// EncodeHeader encodes v as an x402 header value: the standard base64 of
// its JSON.
func EncodeHeader(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("x402: couldn't encode the header: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ErrMalformed is wrapped by the decoding errors of DecodeHeader.
var ErrMalformed = errors.New("x402: malformed header")

// DecodeHeader decodes an x402 header value into v. It accepts the standard
// and URL base64 alphabets, padded or not, refuses a value longer than
// MaxHeaderBytes, and decodes the JSON strictly enough that a document
// read differently by another parser is refused: unknown fields are
// allowed (the protocol grows), trailing data is not.
func DecodeHeader(s string, v any) error {
	raw, err := HeaderBytes(s)
	if err != nil {
		return err
	}
	return DecodeHeaderBytes(raw, v)
}

// HeaderBytes is the JSON document an x402 header value carries (see
// DecodeHeader), not yet decoded.
func HeaderBytes(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(s) > MaxHeaderBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxHeaderBytes)
	}
	raw, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrMalformed)
	}
	return raw, nil
}

// DecodeHeaderBytes decodes raw, a header's JSON document (HeaderBytes),
// into v as DecodeHeader does.
func DecodeHeaderBytes(raw []byte, v any) error {
	// Unmarshal refuses anything but white space after the document, and
	// costs a fraction of a Decoder's buffering (every paid request
	// decodes one or two headers).
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// PaymentIdentifier returns the payment-identifier extension's id in p, or
// "" when p carries none. An id that is not 16-128 characters of letters,
// digits, '-' and '_' is an error.
func (p *PaymentPayload) PaymentIdentifier() (string, error) {
	raw, ok := p.Extensions[ExtensionPaymentIdentifier]
	if !ok {
		return "", nil
	}
	var ext struct {
		Info struct {
			ID string `json:"id"`
		} `json:"info"`
	}
	if err := json.Unmarshal(raw, &ext); err != nil {
		return "", fmt.Errorf("x402: the payment-identifier extension is malformed: %w", err)
	}
	if ext.Info.ID == "" {
		return "", nil
	}
	if !ValidPaymentIdentifier(ext.Info.ID) {
		return "", errors.New("x402: a payment identifier is 16-128 letters, digits, '-' and '_'")
	}
	return ext.Info.ID, nil
}

// ValidPaymentIdentifier reports whether id is a payment identifier as the
// extension defines it: 16-128 letters, digits, '-' and '_'.
func ValidPaymentIdentifier(id string) bool {
	if len(id) < 16 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// WithPaymentIdentifier sets the payment-identifier extension of p to id.
func (p *PaymentPayload) WithPaymentIdentifier(id string) {
	if p.Extensions == nil {
		p.Extensions = map[string]json.RawMessage{}
	}
	b, _ := json.Marshal(map[string]any{"info": map[string]any{"required": false, "id": id}})
	p.Extensions[ExtensionPaymentIdentifier] = b
}
