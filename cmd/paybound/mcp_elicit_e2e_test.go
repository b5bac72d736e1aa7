package main

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPPayElicitsOverHTTP: a 2025-11-25 client of /mcp that declares
// URL-mode elicitation is shown the confirmation link of a payment above
// confirm_above (over its session's stream); the payment still waits for
// the user, and no money moves.
func TestMCPPayElicitsOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "lamps",
		"currency": "USD", "max_amount": 5000, "budget": map[string]any{"amount": 9000, "period": "week"}, "confirm_above": 1000})).str("id")
	var asked atomic.Value
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked.Store(req.Params)
			return &mcp.ElicitResult{Action: "accept"}, nil
		},
	}).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: w.m.URL() + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{w.agentKey}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	before, _ := w.balance(w.userKey, "USD")
	out, isErr, txt := mcpCall(t, cs, "pay", map[string]any{"merchant_id": w.merch, "amount": 2000, "currency": "USD",
		"description": "a lamp", "mandate_id": mdt, "idempotency_key": "k"})
	p, _ := asked.Load().(*mcp.ElicitParams)
	if isErr || out["status"] != "requires_confirmation" || out["elicitation"] != "accept" || p == nil || p.Mode != "url" || p.URL != out["confirmation_url"] {
		t.Fatalf("pay: %v %v %q; elicited %+v", isErr, out, txt, p)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before {
		t.Fatalf("the wallet went from %d to %d before the user approved", before, after)
	}
	if got := w.ok(200, w.call("GET", "/v1/payments/"+out["id"].(string), w.userKey, "", nil)); got.str("status") != "requires_confirmation" {
		t.Fatalf("payment after the elicitation: %s", got.raw)
	}
	w.verify()
}
