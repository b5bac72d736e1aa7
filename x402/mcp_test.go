package x402_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// ledger is a facilitator that verifies Paybound authorizations of one key
// and settles each once (by payment identifier), counting what it settled.
type ledger struct {
	pub     ed25519.PublicKey
	refuse  string // settle's errorReason, when set
	mu      sync.Mutex
	settled map[string]string // payment identifier → transaction
	total   int64
}

func (l *ledger) Verify(_ context.Context, req *x402.FacilitatorRequest) (*x402.VerifyResponse, error) {
	sa, err := wire.ParseSignedAuthorization(req.PaymentPayload.Payload)
	if err != nil || sa.Verify(l.pub, req.PaymentRequirements.Scheme, req.PaymentRequirements.Network) != nil {
		return &x402.VerifyResponse{IsValid: false, InvalidReason: wire.ReasonInvalidSignature}, nil
	}
	return &x402.VerifyResponse{IsValid: true, Payer: sa.Authorization.From}, nil
}

func (l *ledger) Settle(_ context.Context, req *x402.FacilitatorRequest) (*x402.SettlementResponse, error) {
	if l.refuse != "" {
		return &x402.SettlementResponse{Success: false, ErrorReason: l.refuse, Network: req.PaymentRequirements.Network}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pid, _ := req.PaymentPayload.PaymentIdentifier()
	tx, ok := l.settled[pid]
	if !ok {
		amount, _ := wire.ParseAtomic(req.PaymentRequirements.Amount)
		l.total += amount
		tx = "pay_" + pid
		l.settled[pid] = tx
	}
	return &x402.SettlementResponse{Success: true, Transaction: tx, Network: req.PaymentRequirements.Network, Amount: req.PaymentRequirements.Amount}, nil
}

func (l *ledger) paid() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.total }

// sellerTools is an MCP server with paid tools: "quote" (0.01 USD) and
// "broken" (0.01 USD, always isError); runs counts the handlers' runs.
func sellerTools(t *testing.T, fac x402.Facilitator, runs *atomic.Int64) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "seller", Version: "1"}, nil)
	paid := &x402.PaidTool{Network: "paybound:test", PayTo: "mch_seller", Facilitator: fac,
		Price: x402.Price{Amount: 10_000, Asset: "USD", Description: "a quote"}}
	schema := json.RawMessage(`{"type":"object"}`)
	paid.Add(s, &mcp.Tool{Name: "quote", InputSchema: schema}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		runs.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "the early bird pays the worm"}}}, nil
	})
	paid.Add(s, &mcp.Tool{Name: "broken", InputSchema: schema}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		runs.Add(1)
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "out of quotes"}}}, nil
	})
	return s
}

func connectTo(t *testing.T, s *mcp.Server) *mcp.ClientSession {
	ct, st := mcp.NewInMemoryTransports()
	ss, err := s.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "buyer", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return cs
}

// TestPaidToolOverMCP: an unpaid call is refused with PaymentRequired
// (structuredContent and the x402/error text) and does not run the tool;
// Transport.CallTool pays it once, the receipt in _meta; a failed tool is
// not charged; a forged payment runs nothing; a replayed payment answers
// the first result without running the tool again.
func TestPaidToolOverMCP(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	fac := &ledger{pub: pub, settled: map[string]string{}}
	var runs atomic.Int64
	cs := connectTo(t, sellerTools(t, fac, &runs))
	ctx := context.Background()

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "quote", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	pr, ok := x402.ToolPaymentRequired(res)
	if !ok || pr.Resource.URL != "mcp://tool/quote" || pr.Accepts[0].Amount != "10000" || runs.Load() != 0 {
		t.Fatalf("unpaid call: %+v, %v; runs %d", res, ok, runs.Load())
	}
	var wrapped struct {
		E struct {
			Code int                  `json:"code"`
			Data x402.PaymentRequired `json:"data"`
		} `json:"x402/error"`
	}
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &wrapped); err != nil || wrapped.E.Code != 402 || len(wrapped.E.Data.Accepts) != 1 {
		t.Fatalf("content[0].text: %v, %+v", err, wrapped)
	}

	buyer := &x402.Transport{Payer: x402.Payer{Key: priv, Mandate: "mdt_x"}, Asset: "USD", MaxPerRequest: 10_000, MaxPerHour: 100_000}
	paidCtx := x402.WithPaymentID(ctx, "pay_0123456789abcdef0123")
	res, err = buyer.CallTool(paidCtx, cs, &mcp.CallToolParams{Name: "quote", Arguments: map[string]any{}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "the early bird pays the worm" {
		t.Fatalf("paid call: %+v, %v", res, err)
	}
	sr, ok := x402.ToolSettlement(res)
	if !ok || !sr.Success || sr.Amount != "10000" || fac.paid() != 10_000 || runs.Load() != 1 {
		t.Fatalf("receipt %+v %v; paid %d; runs %d", sr, ok, fac.paid(), runs.Load())
	}

	// A payment sent twice (a client's retry): the first result, the tool
	// not run again, one settlement; the same identifier with another
	// payload is refused.
	signed := func() *x402.PaymentPayload {
		sa, err := x402.Authorize(x402.Payer{Key: priv, Mandate: "mdt_x"}, pr.Accepts[0], pr.Resource.URL, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pl, err := x402.Payload(pr, pr.Accepts[0], sa)
		if err != nil {
			t.Fatal(err)
		}
		pl.WithPaymentIdentifier("pay_fedcba9876543210fedcba")
		return pl
	}
	pl := signed()
	call := func(pl *x402.PaymentPayload) *mcp.CallToolResult {
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "quote", Arguments: map[string]any{}, Meta: mcp.Meta{x402.MetaPayment: pl}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1, r2 := call(pl), call(pl)
	s1, _ := x402.ToolSettlement(r1)
	s2, _ := x402.ToolSettlement(r2)
	if r1.IsError || r2.IsError || s1 == nil || s2 == nil || s1.Transaction != s2.Transaction || runs.Load() != 2 || fac.paid() != 20_000 {
		t.Fatalf("replayed payment: %+v %+v; runs %d; paid %d", s1, s2, runs.Load(), fac.paid())
	}
	if pr, ok := x402.ToolPaymentRequired(call(signed())); !ok || pr.Error != wire.ReasonPaymentIDConflict || runs.Load() != 2 {
		t.Fatalf("another payload under the same identifier: %+v", pr)
	}

	// A failed tool is not charged.
	res, err = buyer.CallTool(ctx, cs, &mcp.CallToolParams{Name: "broken", Arguments: map[string]any{}})
	if err != nil || !res.IsError || fac.paid() != 20_000 || runs.Load() != 3 {
		t.Fatalf("broken tool: %+v, %v; paid %d", res, err, fac.paid())
	}
	// A payment signed by another key runs nothing and pays nothing.
	_, other, _ := ed25519.GenerateKey(nil)
	forger := &x402.Transport{Payer: x402.Payer{Key: other, Mandate: "mdt_x"}, Asset: "USD", MaxPerRequest: 10_000, MaxPerHour: 100_000}
	res, err = forger.CallTool(ctx, cs, &mcp.CallToolParams{Name: "quote", Arguments: map[string]any{}})
	if pr, ok := x402.ToolPaymentRequired(res); err != nil || !ok || pr.Error != wire.ReasonInvalidSignature || runs.Load() != 3 || fac.paid() != 20_000 {
		t.Fatalf("forged payment: %+v, %v; runs %d", res, err, runs.Load())
	}
	// A price above the buyer's cap is not paid: the refusal comes back.
	cheap := &x402.Transport{Payer: x402.Payer{Key: priv, Mandate: "mdt_x"}, Asset: "USD", MaxPerRequest: 9_999, MaxPerHour: 100_000}
	res, err = cheap.CallTool(ctx, cs, &mcp.CallToolParams{Name: "quote", Arguments: map[string]any{}})
	if _, ok := x402.ToolPaymentRequired(res); err != nil || !ok || runs.Load() != 3 {
		t.Fatalf("above the cap: %+v, %v", res, err)
	}
	// A settlement that fails withholds the result: the refusal carries
	// the failed settlement.
	fac.refuse = wire.ReasonInsufficientFunds
	res, err = buyer.CallTool(ctx, cs, &mcp.CallToolParams{Name: "quote", Arguments: map[string]any{}})
	m, _ := res.StructuredContent.(map[string]any)
	failed, _ := m[x402.MetaPaymentResponse].(map[string]any)
	if err != nil || !res.IsError || failed["errorReason"] != wire.ReasonInsufficientFunds || fac.paid() != 20_000 {
		t.Fatalf("failed settlement: %+v, %v", res, err)
	}
	for _, c := range res.Content {
		if strings.Contains(c.(*mcp.TextContent).Text, "early bird") {
			t.Fatal("a result whose settlement failed was released")
		}
	}
}
