package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestRevokeAgent: a user revokes one of their agents for good. From the
// answer on, its API key authenticates nothing, its signed requests are
// refused (its keys are revoked with it), no key can be added to it, and
// GET /v1/agents shows when; the ledger is untouched. Revoking again
// changes nothing; another user, a merchant and the agent itself cannot
// revoke it, and those refusals change nothing either.
func TestRevokeAgent(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	sg, jwk := newSigner(t)
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Signer", "public_key": json.RawMessage(jwk)}))
	agent, agentKey := ag.str("id"), ag.str("api_key")
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": agent, "description": "tea",
		"currency": "USD", "max_amount": 1000, "budget": map[string]any{"amount": 5000, "period": "week"}})).str("id")
	pay := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"amount":%d,"currency":"USD","merchant_id":%q,"mandate_id":%q}`, 100+i, w.merch, mdt))
	}
	paid := func(r resp) bool {
		return r.status == 201 && (r.str("status") == "captured" || r.str("status") == "authorized")
	}
	// In force: it pays, with its key and signed.
	if p := w.call("POST", "/v1/payments", agentKey, "", json.RawMessage(pay(0))); !paid(p) {
		t.Fatalf("a payment before the revocation: %s", p.raw)
	}
	if r := send(t, sg.signed(t, "POST", w.base+"/v1/payments", pay(1), "before", time.Now(), nil)); !paid(r) {
		t.Fatalf("a signed payment before the revocation: %d %s", r.status, r.raw)
	}

	other := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bo"})).str("api_key")
	for _, c := range []struct {
		name, key string
		status    int
		code      string
	}{
		{"another user", other, 404, "resource_missing"},
		{"a merchant", w.merchKey, 403, "forbidden"},
		{"the agent itself", agentKey, 403, "forbidden"},
	} {
		if r := w.call("POST", "/v1/agents/"+agent+"/revoke", c.key, "", nil); r.status != c.status || r.errField("code") != c.code {
			t.Fatalf("%s revoking: %d %s", c.name, r.status, r.raw)
		}
	}
	if p := w.call("POST", "/v1/payments", agentKey, "", json.RawMessage(pay(2))); !paid(p) { // refused revocations changed nothing
		t.Fatalf("a payment after refused revocations: %s", p.raw)
	}
	if r := w.call("POST", "/v1/agents/agt_nope/revoke", w.userKey, "", nil); r.status != 400 && r.status != 404 {
		t.Fatalf("revoking a malformed ID: %d %s", r.status, r.raw)
	}

	r := w.ok(200, w.call("POST", "/v1/agents/"+agent+"/revoke", w.userKey, "", nil))
	revokedAt := r.str("revoked_at")
	if revokedAt == "" || r.str("id") != agent || r.str("assurance") != "bearer" {
		t.Fatalf("the revoked agent: %s", r.raw)
	}
	after, _ := w.balance(w.userKey, "USD")
	// Its key authenticates nothing, and its signatures verify nothing.
	for _, path := range []string{"/v1/payments", "/v1/mandates", "/v1/agents"} {
		if r := w.call("GET", path, agentKey, "", nil); r.status != 401 {
			t.Fatalf("GET %s with the revoked agent's key: %d %s", path, r.status, r.raw)
		}
	}
	if r := w.call("POST", "/v1/payments", agentKey, "", json.RawMessage(pay(3))); r.status != 401 {
		t.Fatalf("a payment with the revoked agent's key: %d %s", r.status, r.raw)
	}
	if r := send(t, sg.signed(t, "POST", w.base+"/v1/payments", pay(4), "after", time.Now(), nil)); r.status != 401 {
		t.Fatalf("a signed payment after the revocation: %d %s", r.status, r.raw)
	}
	if now, _ := w.balance(w.userKey, "USD"); now != after {
		t.Fatalf("the wallet moved after the revocation: %d → %d", after, now)
	}
	if after != 50000-100-101-102 {
		t.Fatalf("the wallet after three payments: %d; want %d", after, 50000-100-101-102)
	}
	// No new key for it.
	_, jwk2 := newSigner(t)
	if r := w.call("POST", "/v1/agents/"+agent+"/keys", w.userKey, "", map[string]any{"public_key": json.RawMessage(jwk2)}); r.status != 400 {
		t.Fatalf("adding a key to a revoked agent: %d %s", r.status, r.raw)
	}
	// Listed as revoked, its key too; revoking again changes nothing.
	var l struct {
		Data []struct {
			ID        string `json:"id"`
			RevokedAt string `json:"revoked_at"`
			Keys      []struct {
				Active bool `json:"active"`
			} `json:"keys"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.ok(200, w.call("GET", "/v1/agents", w.userKey, "", nil)).raw, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != 2 || l.Data[0].ID != agent || l.Data[0].RevokedAt != revokedAt || len(l.Data[0].Keys) != 1 || l.Data[0].Keys[0].Active || l.Data[1].RevokedAt != "" {
		t.Fatalf("agents after the revocation: %+v", l)
	}
	if again := w.ok(200, w.call("POST", "/v1/agents/"+agent+"/revoke", w.userKey, "", nil)); again.str("revoked_at") != revokedAt {
		t.Fatalf("revoking again: %s", again.raw)
	}
	// The user's other agent is untouched.
	w.ok(200, w.call("GET", "/v1/payments", w.agentKey, "", nil))
	w.verify()
}

// TestRevokeAgentAcrossProcesses: two servers on one PostgreSQL. An agent
// revoked on one is refused there at once, and on the other once that
// server's memory of the key has aged out (10 s), without a restart.
func TestRevokeAgentAcrossProcesses(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w, apis := twoProcessesWith(t, func(m *Main) { m.Clock = clock })
	a, b := apis[0], apis[1]
	ag := a.ok(201, a.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Shopper"}))
	agent, agentKey := ag.str("id"), ag.str("api_key")
	b.ok(200, b.call("GET", "/v1/payments", agentKey, "", nil)) // B now remembers the key
	a.ok(200, a.call("POST", "/v1/agents/"+agent+"/revoke", w.userKey, "", nil))
	if r := a.call("GET", "/v1/payments", agentKey, "", nil); r.status != 401 {
		t.Fatalf("the revoking server, at once: %d %s", r.status, r.raw)
	}
	clock.Advance(11 * time.Second)
	if r := b.call("GET", "/v1/payments", agentKey, "", nil); r.status != 401 {
		t.Fatalf("the other server, 11 s later: %d %s", r.status, r.raw)
	}
}
