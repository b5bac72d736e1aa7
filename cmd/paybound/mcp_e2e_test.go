package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/paybound/paybound/internal/httpsig"
)

// bearerTransport sends every request with an API key.
type bearerTransport struct{ key string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// signingTransport signs every request as an agent (RFC 9421, Web Bot
// Auth profile), with no Authorization header.
type signingTransport struct{ s *signer }

func (st signingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	components := []string{"@method", "@authority", "@path"}
	if len(body) > 0 {
		r.Header.Set("Content-Digest", httpsig.ContentDigest(body))
		components = append(components, "content-digest")
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	now := time.Now()
	if err := httpsig.Sign(r, "http", "sig1", httpsig.Params{Components: components, Created: now, Expires: now.Add(time.Minute),
		Nonce: base64.StdEncoding.EncodeToString(nonce), KeyID: st.s.keyid, Alg: "ed25519", Tag: "web-bot-auth"}, st.s.key); err != nil {
		return nil, err
	}
	return http.DefaultTransport.RoundTrip(r)
}

// mcpSession connects to the server's /mcp through rt.
func mcpSession(t testing.TB, base string, rt http.RoundTripper) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: rt}}, nil)
	if err != nil {
		t.Fatalf("connect to /mcp: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// mcpCall calls a tool and decodes its structuredContent. A protocol
// error fails the test and answers an empty error result.
func mcpCall(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any) (map[string]any, bool, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Errorf("%s: protocol error %v", tool, err) // not Fatal: callers run it in goroutines
		return map[string]any{}, true, ""
	}
	var out map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &out)
	txt := ""
	if len(res.Content) > 0 {
		if tc, ok := res.Content[0].(*mcp.TextContent); ok {
			txt = tc.Text
		}
	}
	return out, res.IsError, txt
}

// TestMCPOverHTTP: /mcp serves an agent (bearer key or signed requests)
// the agent's tools and a merchant the merchant's; the payments it makes
// are the REST API's, under the same mandate and ledger.
func TestMCPOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "coffee",
		"currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000, "period": "week"}, "merchant_ids": []string{w.merch}})).str("id")

	agent := mcpSession(t, w.m.URL(), bearerTransport{w.agentKey})
	if v := agent.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Errorf("negotiated protocol version %q; want 2026-07-28", v)
	}
	// A 2025-11-25 client is served too.
	old, err := mcp.NewClient(&mcp.Implementation{Name: "old", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: w.m.URL() + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{w.agentKey}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if v := old.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Errorf("a 2025-11-25 client negotiated %q", v)
	}
	if _, isErr, txt := mcpCall(t, old, "wallet_summary", nil); isErr {
		t.Fatalf("wallet_summary over 2025-11-25: %q", txt)
	}
	// Its session is the agent's: another caller's request in it is refused.
	hijack, _ := http.NewRequest("POST", w.m.URL()+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	hijack.Header.Set("Authorization", "Bearer "+w.merchKey)
	hijack.Header.Set("Content-Type", "application/json")
	hijack.Header.Set("Accept", "application/json, text/event-stream")
	hijack.Header.Set("Mcp-Session-Id", old.ID())
	hijack.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if r := send(t, hijack); r.status != 403 {
		t.Fatalf("another caller in the agent's session: %d %s", r.status, r.raw)
	}
	tools, err := agent.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 15 {
		t.Fatalf("agent tools: %v, %v", tools, err)
	}
	pay := func(cs *mcp.ClientSession, amount int, merchant, key string) (map[string]any, bool, string) {
		return mcpCall(t, cs, "pay", map[string]any{"merchant_id": merchant, "amount": amount, "currency": "USD",
			"description": "flat white", "mandate_id": mdt, "idempotency_key": key, "provenance": map[string]any{"payee": "user", "amount": "user"}})
	}
	p, isErr, txt := pay(agent, 450, w.merch, "one")
	if isErr || p["status"] != "captured" || !strings.Contains(txt, "4.50 USD") {
		t.Fatalf("pay: %v %v %q", isErr, p, txt)
	}
	again, _, _ := pay(agent, 450, w.merch, "one")
	if again["id"] != p["id"] {
		t.Fatalf("a retry paid again: %v vs %v", again["id"], p["id"])
	}
	e, isErr, _ := pay(agent, 450, w.merch2, "two")
	if code := e["error"].(map[string]any)["code"]; !isErr || code != "mandate_merchant_not_allowed" {
		t.Fatalf("payee outside the mandate: %v %v", isErr, e)
	}
	// The REST API sees the MCP payment as it is.
	if r := w.ok(200, w.call("GET", "/v1/payments/"+p["id"].(string), w.userKey, "", nil)); r.str("status") != "captured" || r.str("assurance") != "bearer" {
		t.Fatalf("payment over REST: %s", r.raw)
	}

	// A merchant's session has the merchant's tools and refunds it.
	merchant := mcpSession(t, w.m.URL(), bearerTransport{w.merchKey})
	ref, isErr, _ := mcpCall(t, merchant, "refund_payment", map[string]any{"payment_id": p["id"], "amount": 150, "idempotency_key": "r"})
	if isErr || ref["amount"] != float64(150) {
		t.Fatalf("refund: %v %v", isErr, ref)
	}
	if a, _ := w.balance(w.merchKey, "USD"); a != 300 {
		t.Fatalf("merchant's balance %d; want 300", a)
	}

	// A signed agent: its own key, no bearer token.
	s, jwk := newSigner(t)
	signedAgent := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Signer", "public_key": json.RawMessage(jwk)})).str("id")
	mdt2 := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": signedAgent, "description": "tea",
		"currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000, "period": "week"}})).str("id")
	sc := mcpSession(t, w.m.URL(), signingTransport{s})
	sp, isErr, txt := mcpCall(t, sc, "pay", map[string]any{"merchant_id": w.merch, "amount": 300, "currency": "USD",
		"description": "tea", "mandate_id": mdt2, "idempotency_key": "s1"})
	if isErr || sp["status"] != "captured" {
		t.Fatalf("signed pay: %v %v %q", isErr, sp, txt)
	}
	if r := w.ok(200, w.call("GET", "/v1/payments/"+sp["id"].(string), w.userKey, "", nil)); r.str("assurance") != "signed" {
		t.Fatalf("signed payment's assurance: %s", r.raw)
	}

	// A body over 1 MiB is refused before it is read whole.
	big, _ := http.NewRequest("POST", w.m.URL()+"/mcp", bytes.NewReader(make([]byte, 2<<20)))
	big.Header.Set("Authorization", "Bearer "+w.agentKey)
	big.Header.Set("Content-Type", "application/json")
	if r := send(t, big); r.status != 400 || r.errField("code") != "body_too_large" {
		t.Fatalf("a 2 MiB body: %d %s", r.status, r.raw)
	}
	// Refusals before MCP: no key, a bad key, a user's key.
	for _, c := range []struct {
		key    string
		status int
		code   string
	}{{"", 401, "unauthenticated"}, {"sk_nope", 401, "unauthenticated"}, {w.userKey, 403, "forbidden"}} {
		req, _ := http.NewRequest("POST", w.m.URL()+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		r := send(t, req)
		if r.status != c.status || r.errField("code") != c.code {
			t.Fatalf("key %q: %d %s; want %d %s", c.key, r.status, r.raw, c.status, c.code)
		}
	}
	w.verify()
}
