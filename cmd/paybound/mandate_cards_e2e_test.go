package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestMandateCards: GET /v1/mandates/{id}/cards lists a mandate's agent
// cards, oldest first, never their numbers, with their state, which
// follows the mandate: active, then dead when it is revoked. Only the
// user who granted it lists them (another user, by ID guessing too, finds
// no mandate; an agent is forbidden). The wallet's mandate page lists
// them with last 4 digits, expiry and state.
func TestMandateCards(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	mandate := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "groceries",
		"currency": "USD", "max_amount": 5000, "budget": map[string]any{"amount": 20000, "period": "month"}})).str("id")
	type view struct {
		ID       string `json:"id"`
		Last4    string `json:"display_last4"`
		ExpMonth int    `json:"exp_month"`
		ExpYear  int    `json:"exp_year"`
		State    string `json:"state"`
		Number   string `json:"number"`
	}
	list := func() []view {
		t.Helper()
		r := w.ok(200, w.call("GET", "/v1/mandates/"+mandate+"/cards", w.userKey, "", nil))
		var out struct {
			Data    []view `json:"data"`
			HasMore bool   `json:"has_more"`
		}
		if err := json.Unmarshal(r.raw, &out); err != nil || out.HasMore {
			t.Fatalf("cards: %s %v", r.raw, err)
		}
		return out.Data
	}
	if cs := list(); len(cs) != 0 {
		t.Fatalf("before any card: %+v", cs)
	}
	c1 := w.ok(201, w.call("POST", "/v1/mandates/"+mandate+"/card", w.userKey, "", nil))
	c2 := w.ok(201, w.call("POST", "/v1/mandates/"+mandate+"/card", w.userKey, "", nil))
	cs := list()
	if len(cs) != 2 || cs[0].ID != c1.str("id") || cs[1].ID != c2.str("id") {
		t.Fatalf("cards: %+v", cs)
	}
	for i, c := range []resp{c1, c2} {
		if cs[i].Last4 != c.str("number")[15:] || cs[i].Last4 != c.str("display_last4") || cs[i].State != "active" || cs[i].Number != "" || cs[i].ExpMonth < 1 || cs[i].ExpYear < 2026 {
			t.Fatalf("card %d: %+v (issued %s)", i, cs[i], c.raw)
		}
	}
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	r := b.get("/wallet/mandates")
	wantStatus(t, "mandates page", r, 200, "Agent cards of this mandate")
	if !strings.Contains(r.body, "•••• "+cs[0].Last4) || strings.Contains(r.body, c1.str("number")) || !strings.Contains(r.body, "<td>active</td>") {
		t.Fatalf("mandates page: %.3000s", r.body)
	}

	// Nobody else lists them.
	other := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bo"})).str("api_key")
	for _, c := range []struct {
		key, path string
		status    int
		code      string
	}{
		{other, "/v1/mandates/" + mandate + "/cards", 404, "resource_missing"},
		{w.agentKey, "/v1/mandates/" + mandate + "/cards", 403, "forbidden"},
		{w.merchKey, "/v1/mandates/" + mandate + "/cards", 403, "forbidden"},
		{w.userKey, "/v1/mandates/mdt_nope/cards", 404, "resource_missing"},
		{"", "/v1/mandates/" + mandate + "/cards", 401, "unauthenticated"},
	} {
		if r := w.call("GET", c.path, c.key, "", nil); r.status != c.status || r.errField("code") != c.code || strings.Contains(string(r.raw), cs[0].ID) {
			t.Errorf("GET %s as %.8s: %d %s", c.path, c.key, r.status, r.raw)
		}
	}
	bo := newBrowser(t, w.m.URL())
	bo.signIn(other)
	if r := bo.get("/wallet/mandates"); strings.Contains(r.body, cs[0].ID) || strings.Contains(r.body, "•••• "+cs[0].Last4) {
		t.Fatal("another person's mandates page shows the cards")
	}

	// Revoked, the mandate takes its cards with it.
	w.ok(200, w.call("POST", "/v1/mandates/"+mandate+"/revoke", w.userKey, "", nil))
	for _, c := range list() {
		if c.State != "mandate_revoked" {
			t.Fatalf("a card of a revoked mandate: %+v", c)
		}
	}
	wantStatus(t, "mandates page after revoking", b.get("/wallet/mandates"), 200, "dead: mandate_revoked")
	w.verify()
}
