package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// TestMCPPayX402: pay_x402_resource on the real server pays a seller that
// settles at the server's /x402, within the mandate: over /mcp with the
// agent's API key (the server signs a delegated authorization for it,
// only for the hosts the operator allows) and over stdio (the agent's key
// signs). A price above max_amount, a host not allowed and a payment above
// the mandate move nothing.
func TestMCPPayX402(t *testing.T) {
	t.Parallel()
	w := newX402WorldWith(t, map[string]any{"max_amount": 3}, func(m *Main) { m.Config.MCPX402Allow = []string{"127.0.0.1"} })
	cs := mcpSession(t, w.m.URL(), bearerTransport{w.buyerKey})
	pay := func(cs *mcp.ClientSession, path, key string, max int) (map[string]any, bool, string) {
		return mcpCall(t, cs, "pay_x402_resource", map[string]any{"url": w.seller.URL + path, "max_amount": max, "currency": "USD",
			"mandate_id": w.mandate, "idempotency_key": key})
	}
	code := func(out map[string]any) any { e, _ := out["error"].(map[string]any); return e["code"] }
	out, isErr, txt := pay(cs, "/quote", "q1", 5)
	receipt, _ := out["receipt"].(map[string]any)
	if isErr || out["status"] != float64(200) || !strings.Contains(out["body"].(string), "early bird") || receipt["amount"] != float64(1) {
		t.Fatalf("pay_x402_resource over /mcp: %v %v %q", isErr, out, txt)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+receipt["payment_id"].(string), w.userKey, "", nil))
	if p.str("status") != "captured" || p.str("mandate_id") != w.mandate || p.str("assurance") == "signed" {
		t.Fatalf("the delegated payment: %s", p.raw)
	}
	if again, _, _ := pay(cs, "/quote", "q1", 5); again["receipt"].(map[string]any)["payment_id"] != receipt["payment_id"] {
		t.Fatalf("a retry paid again: %v", again)
	}
	if out, isErr, _ := pay(cs, "/dear", "q2", 4); !isErr || code(out) != "x402_price_above_max" {
		t.Fatalf("above max_amount: %v %v", isErr, out)
	}
	other := strings.Replace(w.seller.URL, "127.0.0.1", "localhost", 1)
	if out, isErr, _ := mcpCall(t, cs, "pay_x402_resource", map[string]any{"url": other + "/quote", "max_amount": 5, "currency": "USD",
		"mandate_id": w.mandate, "idempotency_key": "q3"}); !isErr || code(out) != "forbidden" {
		t.Fatalf("a host not allowed: %v %v", isErr, out)
	}
	if a, _ := w.balance(w.merchKey, "USD"); a != 1 {
		t.Fatalf("seller's balance %d; want 1", a)
	}

	// Over stdio the agent's own key signs; the stdio command takes its
	// allowed hosts from --x402-allow (by default, public addresses only).
	bin := buildBinary(t)
	key := writeAgentKey(t, &signer{key: w.payer.Key})
	stdio := func(args ...string) *mcp.ClientSession {
		cmd := exec.Command(bin, append([]string{"mcp", "--server", w.m.URL()}, args...)...)
		cmd.Env = append(os.Environ(), "PAYBOUND_AGENT_KEY="+key, "PAYBOUND_KEY=")
		s, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	if out, isErr, _ := pay(stdio(), "/quote", "s0", 5); !isErr || code(out) != "unavailable" || !strings.Contains(out["error"].(map[string]any)["message"].(string), "not a public address") {
		t.Fatalf("stdio to loopback without --x402-allow: %v %v", isErr, out)
	}
	sc := stdio("--x402-allow", "127.0.0.1")
	out, isErr, txt = pay(sc, "/quote", "s1", 5)
	receipt, _ = out["receipt"].(map[string]any)
	if isErr || receipt["amount"] != float64(1) {
		t.Fatalf("pay_x402_resource over stdio: %v %v %q", isErr, out, txt)
	}
	if p := w.ok(200, w.call("GET", "/v1/payments/"+receipt["payment_id"].(string), w.userKey, "", nil)); p.str("assurance") != "signed" {
		t.Fatalf("the stdio payment: %s", p.raw)
	}
	// 0.05 USD is above the mandate's 0.03 per payment: the server
	// declines it at settlement.
	if out, isErr, _ := pay(sc, "/dear", "s2", 500); !isErr || code(out) != "mandate_amount_exceeded" {
		t.Fatalf("above the mandate over stdio: %v %v", isErr, out)
	}
	if a, _ := w.balance(w.merchKey, "USD"); a != 2 {
		t.Fatalf("seller's balance %d; want 2", a)
	}
	w.verify()
}

// toolSeller is a seller's MCP server (streamable HTTP, at /mcp) whose
// tool "forecast" costs 2 cents (x402.PaidTool), settled at the world's
// /x402; runs counts the tool's runs.
func toolSeller(t *testing.T, w *x402World) (*httptest.Server, *int) {
	s := mcp.NewServer(&mcp.Implementation{Name: "weather", Version: "1"}, nil)
	runs := new(int)
	(&x402.PaidTool{Network: "paybound:local", PayTo: w.merch, Facilitator: &x402.FacilitatorClient{URL: w.m.URL() + "/x402"},
		Price: x402.Price{Amount: 2 * cent, Asset: "USD", Description: "a forecast"}}).Add(s,
		&mcp.Tool{Name: "forecast", Description: "tomorrow's weather", InputSchema: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			*runs++
			var in struct{ City string }
			json.Unmarshal(req.Params.Arguments, &in)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sunny in " + in.City}}}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
	t.Cleanup(srv.Close)
	return srv, runs
}

// TestMCPPaidToolInteropTypeScript: the reference TypeScript MCP client
// (@modelcontextprotocol/sdk) calls a Go seller's paid tool, reads the
// PaymentRequired from the refusal's structuredContent, builds the payment
// with @x402/core (a Paybound scheme client) and sends it in
// _meta["x402/payment"]: the tool answers, the receipt in
// _meta["x402/payment-response"] names the payment in the ledger. Then an
// agent's call_paid_tool on /mcp pays the same tool as the agent.
func TestMCPPaidToolInteropTypeScript(t *testing.T) {
	t.Parallel()
	dir := interopDir(t, "@modelcontextprotocol/sdk")
	w := newX402WorldWith(t, nil, func(m *Main) { m.Config.MCPX402Allow = []string{"127.0.0.1"} })
	srv, runs := toolSeller(t, w)
	enc := base64.RawURLEncoding.EncodeToString
	pub := w.payer.Key.Public().(ed25519.PublicKey)
	spec, _ := json.Marshal(map[string]any{"url": srv.URL, "tool": "forecast", "network": "paybound:local", "mandate": w.mandate,
		"keyid": wire.Thumbprint(pub), "jwk": map[string]string{"x": enc(pub), "d": enc(w.payer.Key.Seed())}})
	cmd := exec.Command("node", "mcpx402.mjs")
	cmd.Dir, cmd.Stdin, cmd.Stderr = dir, bytes.NewReader(spec), tlog{t}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Unpaid struct {
			IsError  bool
			Accepts  int
			Resource string
		}
		Paid struct {
			IsError bool
			Text    string
			Receipt *x402.SettlementResponse
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if !got.Unpaid.IsError || got.Unpaid.Accepts != 1 || got.Unpaid.Resource != "mcp://tool/forecast" {
		t.Fatalf("unpaid: %s", out)
	}
	if got.Paid.IsError || got.Paid.Text != "sunny in Lyon" || got.Paid.Receipt == nil || !got.Paid.Receipt.Success || *runs != 1 {
		t.Fatalf("paid: %s (runs %d)", out, *runs)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+got.Paid.Receipt.Transaction, w.merchKey, "", nil))
	if p.str("status") != "captured" || p.num("amount") != 2 || p.str("mandate_id") != w.mandate {
		t.Fatalf("the payment: %s", p.raw)
	}

	// The agent's own call_paid_tool on /mcp pays the same tool.
	cs := mcpSession(t, w.m.URL(), bearerTransport{w.buyerKey})
	res, isErr, txt := mcpCall(t, cs, "call_paid_tool", map[string]any{"server_url": srv.URL, "tool": "forecast",
		"arguments": map[string]any{"city": "Nice"}, "max_amount": 2, "currency": "USD", "mandate_id": w.mandate, "idempotency_key": "t1"})
	receipt, _ := res["receipt"].(map[string]any)
	if isErr || res["text"] != "sunny in Nice" || receipt["amount"] != float64(2) || *runs != 2 {
		t.Fatalf("call_paid_tool over /mcp: %v %v %q", isErr, res, txt)
	}
	if a, _ := w.balance(w.merchKey, "USD"); a != 4 {
		t.Fatalf("seller's balance %d; want 4", a)
	}
	w.verify()
}
