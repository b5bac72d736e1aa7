package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/storetest"
)

// TestRevokeAgentCard: the user revokes one agent card of a mandate. From
// then on delegate_payment refuses the card, complete refuses a token it
// was delegated as before (nothing charged, the session still payable),
// and the mandate's other card still pays. Nobody but the user revokes it;
// revoking again answers it as it is; the list and the wallet show it
// revoked. On PostgreSQL, a card revoked through one server is refused by
// the other at once (cards are read from the store, not cached).
func TestRevokeAgentCard(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	cardID := s.card.str("id")
	path := "/v1/mandates/" + s.mandate + "/cards/" + cardID + "/revoke"
	other := s.ok(201, s.call("POST", "/v1/mandates/"+s.mandate+"/card", s.userKey, "", nil))

	// A token delegated before the revocation, and the state to compare.
	held := s.teaSession(1)
	tok := s.ok(201, s.delegate(s.agentKey, "d-held", s.cardNo, held, s.merch, 1200, s.clock.Now().Add(time.Hour), s.signer)).str("id")
	userBefore, _ := s.balance(s.userKey, "USD")

	// Only the user who granted the mandate revokes its cards.
	bo := s.ok(201, s.call("POST", "/v1/users", s.op, "", map[string]any{"name": "Bo"})).str("api_key")
	for _, c := range []struct {
		key, path string
		status    int
		code      string
	}{
		{bo, path, 404, "resource_missing"},
		{s.agentKey, path, 403, "forbidden"},
		{s.merchKey, path, 403, "forbidden"},
		{s.userKey, "/v1/mandates/" + s.mandate + "/cards/card_nope/revoke", 404, "resource_missing"},
		{s.userKey, "/v1/mandates/mdt_nope/cards/" + cardID + "/revoke", 404, "resource_missing"},
		{"", path, 401, "unauthenticated"},
	} {
		if r := s.call("POST", c.path, c.key, "", nil); r.status != c.status || r.errField("code") != c.code {
			t.Errorf("POST %s as %.8s: %d %s", c.path, c.key, r.status, r.raw)
		}
	}
	if r := s.call("POST", path, s.userKey, "", map[string]any{"reason": "x"}); r.status != 400 || r.errField("code") != "unknown_field" {
		t.Errorf("a body with a field: %d %s", r.status, r.raw)
	}
	state := func() map[string]string {
		t.Helper()
		r := s.ok(200, s.call("GET", "/v1/mandates/"+s.mandate+"/cards", s.userKey, "", nil))
		out := map[string]string{}
		for _, c := range r.body["data"].([]any) {
			c := c.(map[string]any)
			out[c["id"].(string)] = c["state"].(string)
		}
		return out
	}
	if st := state(); st[cardID] != "active" || st[other.str("id")] != "active" {
		t.Fatalf("after refused revocations: %v", st)
	}

	// Revoked through the other server when there is one.
	revoker := s.world
	if storetest.UsePostgres() {
		revoker = &world{api: &api{t: t, base: secondMain(t, s.m, func(m *Main) { m.Clock = s.clock }).URL()}}
	}
	r := revoker.ok(200, revoker.call("POST", path, s.userKey, "", nil))
	if r.str("state") != "revoked" || r.body["revoked_at"] == nil || r.str("id") != cardID {
		t.Fatalf("revoked: %s", r.raw)
	}
	if again := s.ok(200, s.call("POST", path, s.userKey, "", nil)); again.str("revoked_at") != r.str("revoked_at") {
		t.Fatalf("revoked twice: %s, then %s", r.raw, again.raw)
	}
	if st := state(); st[cardID] != "revoked" || st[other.str("id")] != "active" {
		t.Fatalf("after revoking one: %v", st)
	}

	// The card and what it delegated are refused; nothing is charged.
	c := s.acp("POST", s.sessions(s.merch)+"/"+held+"/complete", s.agentKey, "k-held", completeBody(tok), "", nil)
	if c.status != 400 || c.acpCode() != "payment_token_invalid $.payment_data.instrument.credential.token" || !strings.Contains(string(c.raw), "was revoked") {
		t.Fatalf("complete with a revoked card's token: %d %s", c.status, c.raw)
	}
	fresh := s.teaSession(1)
	if d := s.delegate(s.agentKey, "d-fresh", s.cardNo, fresh, s.merch, 1200, s.clock.Now().Add(time.Hour), s.signer); d.status != 400 ||
		d.acpCode() != "invalid_card $.payment_method.number" || !strings.Contains(string(d.raw), "was revoked") {
		t.Fatalf("delegating a revoked card: %d %s", d.status, d.raw)
	}
	if avail, _ := s.balance(s.userKey, "USD"); avail != userBefore {
		t.Fatalf("the user paid %d with a revoked card", userBefore-avail)
	}
	if g := s.ok(200, s.acp("GET", s.sessions(s.merch)+"/"+held, s.agentKey, "", nil, "", nil)); g.str("status") != "ready_for_payment" {
		t.Fatalf("the session after the refusal: %s", g.raw)
	}

	// The mandate's other card pays the same session.
	if p := s.ok(200, s.pay(held, other.str("number"), 1200)); p.str("status") != "completed" {
		t.Fatalf("paid with the other card: %s", p.raw)
	}
	if avail, _ := s.balance(s.userKey, "USD"); avail != userBefore-1200 {
		t.Fatalf("the user paid %d, want 1200", userBefore-avail)
	}

	// The wallet shows it, and revokes the other one.
	b := newBrowser(t, s.m.URL())
	b.signIn(s.userKey)
	page := b.get("/wallet/mandates")
	wantStatus(t, "mandates page", page, 200, "revoked ")
	if !strings.Contains(page.body, "Revoke card<span class=\"sr-only\"> ending "+other.str("display_last4")) || strings.Contains(page.body, "sr-only\"> ending "+s.cardLast) {
		t.Fatalf("the mandates page offers revoking only the live card: %.4000s", page.body)
	}
	walletPath := "/wallet/mandates/" + s.mandate + "/cards/" + other.str("id") + "/revoke"
	wantStatus(t, "revoke without the CSRF token", b.form(walletPath, url.Values{"idem": {"w1"}, "csrf": {""}}), 403, "")
	if st := state(); st[other.str("id")] != "active" {
		t.Fatalf("after a refused wallet revocation: %v", st)
	}
	if r := b.form(walletPath, url.Values{"idem": {"w1"}}); r.status != 303 {
		t.Fatalf("revoke in the wallet: %d %s", r.status, r.body)
	}
	wantStatus(t, "after revoking in the wallet", b.get("/wallet/mandates?done=card"), 200, "Card revoked")
	if st := state(); st[other.str("id")] != "revoked" {
		t.Fatalf("after the wallet's revocation: %v", st)
	}
	s.verify()
}

// TestDelegationFollowsKeyChanges: delegate_payment's Signature is checked
// against the agent's keys as the last change left them, though the server
// remembers them between checkouts: a key added verifies at once, and a
// key revoked is refused at once, with nothing delegated.
func TestDelegationFollowsKeyChanges(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	soon := s.clock.Now().Add(time.Hour)
	first := s.teaSession(1)
	s.ok(201, s.delegate(s.agentKey, "d1", s.cardNo, first, s.merch, 1200, soon, s.signer)) // the keys are remembered now

	second, jwk := newSigner(t)
	s.ok(201, s.call("POST", "/v1/agents/"+s.agent+"/keys", s.userKey, "", map[string]any{"public_key": json.RawMessage(jwk)}))
	s.ok(201, s.delegate(s.agentKey, "d2", s.cardNo, s.teaSession(1), s.merch, 1200, soon, second))

	s.ok(200, s.call("POST", "/v1/agents/"+s.agent+"/keys/"+s.signer.keyid+"/revoke", s.userKey, "", nil))
	id := s.teaSession(1)
	if r := s.delegate(s.agentKey, "d3", s.cardNo, id, s.merch, 1200, soon, s.signer); r.status != 401 || r.str("code") != "signature_invalid" {
		t.Fatalf("delegating with a revoked key: %d %s", r.status, r.raw)
	}
	if n := s.ok(200, s.acp("GET", s.sessions(s.merch)+"/"+id, s.agentKey, "", nil, "", nil)); n.str("status") != "ready_for_payment" {
		t.Fatalf("the session after the refusal: %s", n.raw)
	}
	s.ok(201, s.delegate(s.agentKey, "d4", s.cardNo, id, s.merch, 1200, soon, second))
	s.verify()
}

// TestRevokeAgentCardConcurrently: revocations of one card sent at once,
// each with its own key, revoke it once: one agent_card.revoked entry in
// the log, and every answer carries its revoked_at.
func TestRevokeAgentCardConcurrently(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	path := "/v1/mandates/" + s.mandate + "/cards/" + s.card.str("id") + "/revoke"
	var wg sync.WaitGroup
	at := make([]string, 12)
	for i := range at {
		wg.Go(func() {
			at[i] = s.ok(200, s.call("POST", path, s.userKey, fmt.Sprint("rv-", i), nil)).str("revoked_at")
		})
	}
	wg.Wait()
	for _, a := range at {
		if a == "" || a != at[0] {
			t.Fatalf("revoked_at in the answers: %q", at)
		}
	}
	// A shared store numbers entries as its checkpointer integrates them,
	// within a second or so.
	entries := 0
	for try := 0; try < 100 && entries == 0; try++ {
		time.Sleep(time.Duration(try) * 10 * time.Millisecond)
		for i := 0; ; i++ {
			e := s.call("GET", "/v1/log/entries/"+fmt.Sprint(i), s.op, "", nil)
			if e.status == 404 {
				break
			}
			if e.str("type") == "agent_card.revoked" {
				entries++
			}
		}
	}
	if entries != 1 {
		t.Fatalf("%d agent_card.revoked entries in the log, want 1", entries)
	}
	s.verify()
}
