package x402

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/paybound/paybound/x402/wire"
)

// The _meta keys of x402 over MCP (x402's transports-v2/mcp.md).
const (
	// MetaPayment carries a tool call's PaymentPayload (client → server).
	MetaPayment = "x402/payment"
	// MetaPaymentResponse carries the SettlementResponse of a paid call
	// (server → client).
	MetaPaymentResponse = "x402/payment-response"
	// metaError wraps PaymentRequired in a refusal's content[0].text.
	metaError = "x402/error"
)

// PaidTool makes MCP tools paid (x402 over MCP, transports-v2/mcp.md): a
// call without _meta["x402/payment"] is answered isError with the
// PaymentRequired as its structuredContent (and, wrapped in
// {"x402/error": {code: 402, message, data}}, as content[0].text); a call
// with a payment that matches the price is verified by the facilitator,
// run, and settled only if the tool succeeded (no Go error, not isError):
// its result then carries the SettlementResponse in
// _meta["x402/payment-response"]. A tool that failed charges nothing; a
// tool is never run for a payment that did not verify; a result whose
// settlement failed is withheld (isError with the PaymentRequired and the
// failed settlement under "x402/payment-response"). A paid result is kept
// by payment identifier, so a client that retries the same payment gets it
// again without the tool running twice (the same identifier with another
// payload: payment_identifier_conflict).
type PaidTool struct {
	// Network is the facilitator's network ("paybound:<instance>").
	Network string
	// PayTo is the seller: a Paybound merchant ID.
	PayTo       string
	Facilitator Facilitator
	// Price is what a call costs (exact: Scheme "" or exact).
	Price Price
	// MaxTimeoutSeconds is how long a payment may take (default 60).
	MaxTimeoutSeconds int

	answers answerCache
}

// ToolResource is the x402 resource URL of the tool name: mcp://tool/<name>.
func ToolResource(name string) string { return "mcp://tool/" + name }

// Wrap returns h, the handler of the tool name, behind the paywall. Use it
// with mcp.Server.AddTool (the handler reads its arguments itself).
func (p *PaidTool) Wrap(name string, h mcp.ToolHandler) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return p.call(ctx, name, req, h)
	}
}

// Add registers tool t on s, paid, with handler h.
func (p *PaidTool) Add(s *mcp.Server, t *mcp.Tool, h mcp.ToolHandler) {
	s.AddTool(t, p.Wrap(t.Name, h))
}

func (p *PaidTool) requirements() PaymentRequirements {
	return (&Middleware{Network: p.Network, PayTo: p.PayTo, MaxTimeoutSeconds: p.MaxTimeoutSeconds}).requirements(Price{Scheme: wire.SchemeExact, Amount: p.Price.Amount, Asset: p.Price.Asset})
}

func (p *PaidTool) call(ctx context.Context, name string, req *mcp.CallToolRequest, h mcp.ToolHandler) (*mcp.CallToolResult, error) {
	reqs := p.requirements()
	res := &Resource{URL: ToolResource(name), Description: p.Price.Description, MimeType: p.Price.MimeType}
	var raw any
	if req.Params != nil {
		raw = req.Params.GetMeta()[MetaPayment]
	}
	if raw == nil {
		return required(res, reqs, "Payment required", nil), nil
	}
	b, err := json.Marshal(raw)
	var pl PaymentPayload
	if err == nil {
		err = json.Unmarshal(b, &pl)
	}
	if err != nil || len(b) > 16<<10 {
		return required(res, reqs, wire.ReasonInvalidPayload, nil), nil
	}
	if reason := matches(&pl, reqs, res); reason != "" {
		return required(res, reqs, reason, nil), nil
	}
	pid, err := pl.PaymentIdentifier()
	if err != nil {
		return required(res, reqs, wire.ReasonInvalidPayload+": "+err.Error(), nil), nil
	}
	digest := sha256.Sum256(b)
	if pid != "" {
		if a := p.answers.get(pid); a != nil {
			if a.payload != digest {
				return required(res, reqs, wire.ReasonPaymentIDConflict, nil), nil
			}
			var out mcp.CallToolResult
			if err := json.Unmarshal(a.body, &out); err == nil {
				return &out, nil
			}
		}
	}
	fr := &FacilitatorRequest{X402Version: wire.Version, PaymentPayload: pl, PaymentRequirements: reqs}
	vr, err := p.Facilitator.Verify(ctx, fr)
	if err != nil {
		return required(res, reqs, wire.ReasonUnexpectedVerify, &SettlementResponse{ErrorReason: wire.ReasonUnexpectedVerify, Network: reqs.Network}), nil
	}
	if !vr.IsValid {
		return required(res, reqs, vr.InvalidReason, nil), nil
	}
	out, err := h(ctx, req)
	if err != nil || out == nil || out.IsError {
		return out, err // the tool failed: nothing is charged
	}
	sr, err := p.Facilitator.Settle(ctx, fr)
	switch {
	case err != nil:
		reason := wire.ReasonSettlementPending
		if errors.Is(err, ErrMalformedAnswer) {
			reason = wire.ReasonResponseMalformed
		}
		return required(res, reqs, "Payment settlement failed: "+reason, &SettlementResponse{ErrorReason: reason, Network: reqs.Network}), nil
	case !sr.Success:
		return required(res, reqs, "Payment settlement failed: "+sr.ErrorReason, sr), nil
	}
	meta := out.GetMeta()
	if meta == nil {
		meta = mcp.Meta{}
	}
	meta[MetaPaymentResponse] = sr
	out.SetMeta(meta)
	if pid != "" {
		if body, err := json.Marshal(out); err == nil {
			p.answers.put(pid, &cachedAnswer{payload: digest, body: body})
		}
	}
	return out, nil
}

// required is a refusal: PaymentRequired as structuredContent (with the
// failed settlement, if any) and, wrapped, as content[0].text.
func required(res *Resource, reqs PaymentRequirements, reason string, sr *SettlementResponse) *mcp.CallToolResult {
	pr := PaymentRequired{X402Version: wire.Version, Error: reason, Resource: res, Accepts: []PaymentRequirements{reqs}}
	var structured any = pr
	if sr != nil {
		b, _ := json.Marshal(pr)
		var m map[string]any
		json.Unmarshal(b, &m)
		m[MetaPaymentResponse] = sr
		structured = m
	}
	text, _ := json.Marshal(map[string]any{metaError: map[string]any{"code": 402, "message": reason, "data": pr}})
	return &mcp.CallToolResult{IsError: true, StructuredContent: structured, Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}}
}

// ToolPaymentRequired reads the PaymentRequired of a paid tool's refusal,
// in the order transports-v2/mcp.md gives: structuredContent itself, its
// "x402/error".data, then content[0].text (PaymentRequired or the
// x402/error wrapper). ok is false when res asks no payment.
func ToolPaymentRequired(res *mcp.CallToolResult) (pr *PaymentRequired, ok bool) {
	if res == nil || !res.IsError {
		return nil, false
	}
	try := func(v any) (*PaymentRequired, bool) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		var probe struct {
			PaymentRequired
			Wrapped *struct {
				Data *PaymentRequired `json:"data"`
			} `json:"x402/error"`
		}
		if json.Unmarshal(b, &probe) != nil {
			return nil, false
		}
		if probe.X402Version != 0 && len(probe.Accepts) > 0 {
			out := probe.PaymentRequired
			return &out, true
		}
		if probe.Wrapped != nil && probe.Wrapped.Data != nil && len(probe.Wrapped.Data.Accepts) > 0 {
			return probe.Wrapped.Data, true
		}
		return nil, false
	}
	if res.StructuredContent != nil {
		if pr, ok := try(res.StructuredContent); ok {
			return pr, true
		}
	}
	if len(res.Content) > 0 {
		if tc, isText := res.Content[0].(*mcp.TextContent); isText {
			return try(json.RawMessage(bytes.TrimSpace([]byte(tc.Text))))
		}
	}
	return nil, false
}

// ToolSettlement reads a paid result's _meta["x402/payment-response"].
func ToolSettlement(res *mcp.CallToolResult) (*SettlementResponse, bool) {
	if res == nil {
		return nil, false
	}
	v, ok := res.GetMeta()[MetaPaymentResponse]
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(v)
	var sr SettlementResponse
	if err != nil || json.Unmarshal(b, &sr) != nil {
		return nil, false
	}
	return &sr, true
}

// CallTool calls a tool of cs as t pays an HTTP request: a refusal that
// asks for a payment t may make (a Paybound network, t.Asset, within
// t.MaxPerRequest and t.MaxPerHour) is paid with one authorization, and
// the call sent again with it in _meta["x402/payment"] (under the context's
// payment identifier, WithPaymentID, or a fresh one); a refusal it may not
// pay is returned as it came. The settlement, when the tool was paid, is
// in the result's _meta (ToolSettlement).
func (t *Transport) CallTool(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		return nil, err
	}
	pr, ok := ToolPaymentRequired(res)
	if !ok {
		return res, nil
	}
	reqs, ok := t.choose(pr)
	if !ok {
		return res, nil
	}
	amount, _ := wire.ParseAtomic(reqs.Amount)
	if !t.reserve(amount) {
		return res, nil
	}
	pl, err := t.payload(ctx, pr, reqs)
	if err != nil {
		t.release(amount)
		return nil, err
	}
	paid := *params
	meta := mcp.Meta{}
	for k, v := range params.Meta {
		meta[k] = v
	}
	meta[MetaPayment] = pl
	paid.Meta = meta
	res, err = cs.CallTool(ctx, &paid)
	if sr, ok := ToolSettlement(res); err != nil || !ok || !sr.Success {
		t.release(amount)
	}
	return res, err
}
