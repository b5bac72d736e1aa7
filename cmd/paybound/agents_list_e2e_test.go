package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestListAgents: GET /v1/agents lists a user's agents newest first, with
// their keys and assurance (signed while a key is in force, bearer once it
// is revoked); pages follow starting_after; an agent sees itself alone;
// another user, a merchant and bad parameters see nothing of them. The
// wallet's Agents page lists an agent that has neither a mandate nor a
// payment, by name.
func TestListAgents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	sg, jwk := newSigner(t)
	signer := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Signer", "public_key": json.RawMessage(jwk)})).str("id")

	type view struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		UserID    string `json:"user_id"`
		Assurance string `json:"assurance"`
		Keys      []struct {
			KeyID  string `json:"keyid"`
			Active bool   `json:"active"`
		} `json:"keys"`
	}
	list := func(key, query string) (out struct {
		Data    []view `json:"data"`
		HasMore bool   `json:"has_more"`
	}) {
		t.Helper()
		r := w.ok(200, w.call("GET", "/v1/agents"+query, key, "", nil))
		if err := json.Unmarshal(r.raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	l := list(w.userKey, "")
	if len(l.Data) != 2 || l.HasMore || l.Data[0].ID != signer || l.Data[1].ID != w.agent {
		t.Fatalf("user's agents: %+v", l)
	}
	if a := l.Data[0]; a.Name != "Signer" || a.UserID != w.user || a.Assurance != "signed" || len(a.Keys) != 1 || a.Keys[0].KeyID != sg.keyid || !a.Keys[0].Active {
		t.Fatalf("signing agent: %+v", a)
	}
	if a := l.Data[1]; a.Name != "Shopper" || a.Assurance != "bearer" || len(a.Keys) != 0 {
		t.Fatalf("bearer agent: %+v", a)
	}
	// Pages.
	p1 := list(w.userKey, "?limit=1")
	p2 := list(w.userKey, "?limit=1&starting_after="+p1.Data[0].ID)
	if len(p1.Data) != 1 || !p1.HasMore || p1.Data[0].ID != signer || len(p2.Data) != 1 || p2.HasMore || p2.Data[0].ID != w.agent {
		t.Fatalf("pages: %+v %+v", p1, p2)
	}
	// A revoked key: the agent is down to bearer.
	w.ok(200, w.call("POST", "/v1/agents/"+signer+"/keys/"+sg.keyid+"/revoke", w.userKey, "", nil))
	if a := list(w.userKey, "").Data[0]; a.Assurance != "bearer" || a.Keys[0].Active {
		t.Fatalf("after revoking its key: %+v", a)
	}
	// An agent sees itself alone.
	if l := list(w.agentKey, ""); len(l.Data) != 1 || l.Data[0].ID != w.agent {
		t.Fatalf("agent's list: %+v", l)
	}
	// Another user sees none of them.
	other := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bo"})).str("api_key")
	if l := list(other, ""); len(l.Data) != 0 {
		t.Fatalf("another user's list: %+v", l)
	}
	if l := list(other, "?starting_after="+signer); len(l.Data) != 0 {
		t.Fatalf("another user's list after a guessed ID: %+v", l)
	}
	for _, c := range []struct {
		key, query string
		status     int
		code       string
	}{
		{w.merchKey, "", 403, "forbidden"},
		{w.op, "", 403, "forbidden"},
		{"", "", 401, "unauthenticated"},
		{w.userKey, "?limit=0", 400, "parameter_invalid"},
		{w.userKey, "?limit=101", 400, "parameter_invalid"},
		{w.userKey, "?starting_after=pay_x", 400, "parameter_invalid"},
	} {
		r := w.call("GET", "/v1/agents"+c.query, c.key, "", nil)
		if r.status != c.status || r.errField("code") != c.code {
			t.Errorf("GET /v1/agents%s as %.8s: %d %s", c.query, c.key, r.status, r.raw)
		}
	}

	// The CLI lists them too.
	out, _, err := w.cli(w.userKey, "agents", "list")
	if err != nil || !regexp.MustCompile(signer+` +"Signer" +bearer +0 `).MatchString(out) || !regexp.MustCompile(w.agent+` +"Shopper" +bearer +0 `).MatchString(out) {
		t.Fatalf("paybound agents list: %v\n%s", err, out)
	}

	// The wallet lists both, though neither has a mandate or a payment.
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	r := b.get("/wallet/agents")
	wantStatus(t, "agents page", r, 200, "Signer <code>"+signer+"</code>")
	if !strings.Contains(r.body, "Shopper <code>"+w.agent+"</code>") || !strings.Contains(r.body, "Proves itself with its API key alone") {
		t.Fatalf("agents page: %.2000s", r.body)
	}
	bo := newBrowser(t, w.m.URL())
	bo.signIn(other)
	if r := bo.get("/wallet/agents"); strings.Contains(r.body, signer) || strings.Contains(r.body, w.agent) {
		t.Fatal("another person's Agents page shows these agents")
	}
	w.verify()
}
