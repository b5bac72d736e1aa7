// Package x402 lets Go programs sell and buy HTTP resources with x402
// version 2 (HTTP 402 payments) on Paybound: Middleware is a seller's
// paywall in front of any net/http handler, Transport a buyer agent's
// http.RoundTripper that pays 402s within its caps (and, with CallTool,
// MCP tools that PaidTool makes paid: x402 over MCP), and FacilitatorClient
// calls an x402 facilitator (Paybound's /x402, or another for the schemes
// it supports). The wire types, the header codec and the authorizations
// are package x402/wire's; their names are repeated here.
//
// Paybound's network is "paybound:<instance>", its assets ISO 4217 codes,
// and amounts atomic units of 10^-6 of the major unit (docs/x402.md).
package x402

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/paybound/paybound/x402/wire"
)

// The wire types, as package wire defines them.
type (
	PaymentRequired     = wire.PaymentRequired
	PaymentRequirements = wire.PaymentRequirements
	PaymentPayload      = wire.PaymentPayload
	SettlementResponse  = wire.SettlementResponse
	VerifyResponse      = wire.VerifyResponse
	FacilitatorRequest  = wire.FacilitatorRequest
	SupportedResponse   = wire.SupportedResponse
	Resource            = wire.Resource
)

// Facilitator verifies and settles payments for a Middleware.
type Facilitator interface {
	// Verify checks a payment without settling it.
	Verify(ctx context.Context, req *FacilitatorRequest) (*VerifyResponse, error)
	// Settle settles it. An error means the outcome is unknown (the
	// request or its answer was lost, or the answer was malformed): the
	// payment may be pending, and the same request may be sent again.
	Settle(ctx context.Context, req *FacilitatorRequest) (*SettlementResponse, error)
}

// FacilitatorClient is an x402 facilitator over HTTP: URL is its base (for
// Paybound, the server's address and /x402), to which /verify, /settle and
// /supported are appended.
type FacilitatorClient struct {
	URL string
	// HTTP is the client to use (nil: one with Timeout 15 s).
	HTTP *http.Client
	// Header is sent with every request (an API key, if the facilitator
	// wants one).
	Header http.Header
}

// maxFacilitatorAnswer bounds a facilitator's answer.
const maxFacilitatorAnswer = 64 << 10

var defaultClient = &http.Client{Timeout: 15 * time.Second}

// ErrMalformedAnswer is wrapped by FacilitatorClient's errors for an answer
// that is not the protocol's.
var ErrMalformedAnswer = errors.New("x402: the facilitator's answer is malformed")

func (c *FacilitatorClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, body)
	if err != nil {
		return err
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("x402: couldn't reach the facilitator: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxFacilitatorAnswer+1))
	if err != nil {
		return fmt.Errorf("x402: couldn't read the facilitator's answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: status %d: %.200s", ErrMalformedAnswer, res.StatusCode, raw)
	}
	if len(raw) > maxFacilitatorAnswer {
		return fmt.Errorf("%w: longer than %d bytes", ErrMalformedAnswer, maxFacilitatorAnswer)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedAnswer, err)
	}
	return nil
}

// Verify calls the facilitator's /verify.
func (c *FacilitatorClient) Verify(ctx context.Context, req *FacilitatorRequest) (*VerifyResponse, error) {
	var out VerifyResponse
	if err := c.do(ctx, "POST", "/verify", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Settle calls the facilitator's /settle. An answer that says success
// without naming its transaction and network is malformed.
func (c *FacilitatorClient) Settle(ctx context.Context, req *FacilitatorRequest) (*SettlementResponse, error) {
	var out SettlementResponse
	if err := c.do(ctx, "POST", "/settle", req, &out); err != nil {
		return nil, err
	}
	if out.Success && (out.Network == "" || (out.Transaction == "" && out.Amount != "0")) {
		return nil, fmt.Errorf("%w: success without a network, or a transaction for a non-zero amount", ErrMalformedAnswer)
	}
	return &out, nil
}

// Supported calls the facilitator's /supported.
func (c *FacilitatorClient) Supported(ctx context.Context) (*SupportedResponse, error) {
	var out SupportedResponse
	if err := c.do(ctx, "GET", "/supported", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
