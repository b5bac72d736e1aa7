package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// writeAgentKey writes s's private key as paybound agent keygen does
// (mode 0600) and returns the file's path.
func writeAgentKey(t *testing.T, s *signer) string {
	t.Helper()
	pub := s.key.Public().(ed25519.PublicKey)
	b, _ := json.Marshal(map[string]string{"kty": "OKP", "crv": "Ed25519",
		"x": base64.RawURLEncoding.EncodeToString(pub), "d": base64.RawURLEncoding.EncodeToString(s.key.Seed())})
	path := filepath.Join(t.TempDir(), "agent.key")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMCPStdio: `paybound mcp --server URL`, a separate process, serves
// the agent's tools over stdio through the Go SDK, every request signed
// with the agent's key file: it pays under a mandate (assurance signed),
// retries safely, refuses a replayed key with another amount and a payee
// outside the mandate, and relays ACP's checkout.
func TestMCPStdio(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	w := newWorld(t, nil)
	s, jwk := newSigner(t)
	agent := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Stdio", "public_key": json.RawMessage(jwk)})).str("id")
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": agent, "description": "coffee",
		"currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000, "period": "week"}, "merchant_ids": []string{w.merch}})).str("id")
	prod := w.ok(201, w.call("POST", "/v1/products", w.merchKey, "", map[string]any{"name": "Beans", "sku": "B-1",
		"price": 900, "currency": "USD", "fulfillment": "digital"})).str("id")

	cmd := exec.Command(bin, "mcp", "--server", w.m.URL())
	cmd.Env = append(os.Environ(), "PAYBOUND_AGENT_KEY="+writeAgentKey(t, s), "PAYBOUND_KEY=")
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 15 {
		t.Fatalf("tools over stdio: %v, %v", tools, err)
	}
	wallet, isErr, txt := mcpCall(t, cs, "wallet_summary", nil)
	if isErr || wallet["agent_id"] != agent || !strings.Contains(txt, "10.00 USD") {
		t.Fatalf("wallet_summary: %v %v %q", isErr, wallet, txt)
	}
	pay := func(amount int, merchant, key string) (map[string]any, bool, string) {
		return mcpCall(t, cs, "pay", map[string]any{"merchant_id": merchant, "amount": amount, "currency": "USD",
			"description": "coffee", "mandate_id": mdt, "idempotency_key": key})
	}
	p, isErr, txt := pay(400, w.merch, "k1")
	if isErr || p["status"] != "captured" {
		t.Fatalf("pay over stdio: %v %v %q", isErr, p, txt)
	}
	if again, _, _ := pay(400, w.merch, "k1"); again["id"] != p["id"] {
		t.Fatalf("a retry paid again: %v", again)
	}
	if e, isErr, _ := pay(300, w.merch, "k1"); !isErr || e["error"].(map[string]any)["code"] != "idempotency_conflict" {
		t.Fatalf("replayed key, other amount: %v %v", isErr, e)
	}
	if e, isErr, _ := pay(300, w.merch2, "k2"); !isErr || e["error"].(map[string]any)["code"] != "mandate_merchant_not_allowed" {
		t.Fatalf("payee outside the mandate: %v %v", isErr, e)
	}
	if r := w.ok(200, w.call("GET", "/v1/payments/"+p["id"].(string), w.userKey, "", nil)); r.str("assurance") != "signed" {
		t.Fatalf("stdio payment's assurance: %s", r.raw)
	}
	if a, _ := w.balance(w.merchKey, "USD"); a != 400 {
		t.Fatalf("merchant's balance %d; want 400", a)
	}
	// request_mandate through the REST API: the request waits for the
	// user, listed by GET /v1/mandate_requests; bad terms create nothing.
	req, isErr, txt := mcpCall(t, cs, "request_mandate", map[string]any{"description": "more coffee", "reason": "the week's budget is spent",
		"currency": "USD", "max_amount": 500, "budget_amount": 3000, "budget_period": "week", "idempotency_key": "r1"})
	if isErr || req["status"] != "awaiting_user" || req["wallet_url"] != w.m.URL()+"/wallet/mandates#r-"+req["request_id"].(string) {
		t.Fatalf("request_mandate over stdio: %v %v %q", isErr, req, txt)
	}
	if e, isErr, _ := mcpCall(t, cs, "request_mandate", map[string]any{"description": "more coffee", "reason": "x",
		"currency": "USD", "max_amount": 5000, "budget_amount": 3000, "idempotency_key": "r2"}); !isErr || e["error"].(map[string]any)["param"] != "max_amount" {
		t.Fatalf("a request above its budget: %v %v", isErr, e)
	}
	if rs := w.ok(200, w.call("GET", "/v1/mandate_requests", w.userKey, "", nil)).body["data"].([]any); len(rs) != 1 ||
		rs[0].(map[string]any)["id"] != req["request_id"] || rs[0].(map[string]any)["status"] != "pending" {
		t.Fatalf("the user's mandate requests: %v", rs)
	}
	meta := map[string]any{"api_version": "2026-04-17", "idempotency_key": "cs1"}
	sess, isErr, txt := mcpCall(t, cs, "create_checkout_session", map[string]any{"merchant_id": w.merch, "meta": meta,
		"payload": map[string]any{"currency": "usd", "line_items": []any{map[string]any{"id": prod}}, "capabilities": map[string]any{}}})
	if isErr || sess["status"] != "ready_for_payment" {
		t.Fatalf("checkout over stdio: %v %v %q", isErr, sess, txt)
	}
	got, isErr, _ := mcpCall(t, cs, "get_checkout_session", map[string]any{"merchant_id": w.merch, "id": sess["id"], "meta": map[string]any{"api_version": "2026-04-17"}})
	if isErr || got["id"] != sess["id"] {
		t.Fatalf("get over stdio: %v %v", isErr, got)
	}
	w.verify()
}
