package main

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/paybound/paybound/internal/stepup"
)

// TestWalletApprovals: a payment the agent made without a mandate waits
// for Ada; the Approvals page says what was asked, under which mandate and
// why; she approves one with her passkey (bound to that payment: an
// assertion for one does not approve another), one with a one-time code,
// and denies one. Each moves the money as the API's approval does.
func TestWalletApprovals(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w, b, rp, auth, cred := walletWithPasskey(t, clock) // a passkey registered through the wallet

	pay := func(desc string) (string, string) {
		r := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 2000, "currency": "USD",
			"merchant_id": w.merch, "description": desc}))
		return r.str("id"), r.body["confirmation"].(map[string]any)["id"].(string)
	}
	p1, c1 := pay("noise-cancelling headphones")
	p2, c2 := pay("a second pair")
	p3, c3 := pay("a third pair")
	a := b.get("/wallet/approvals")
	wantStatus(t, "approvals", a, 200, "noise-cancelling headphones")
	for _, s := range []string{c1, c2, c3, "20.00 USD", w.agent, "no mandate for this payment", "Approve with my passkey", "one-time code", "Deny"} {
		if !strings.Contains(a.body, s) {
			t.Errorf("approvals lack %q", s)
		}
	}
	avail0, _ := w.balance(w.userKey, "USD")

	// Passkey: the assertion is made for c1; sent for c2 it is refused.
	o := b.fetch("/wallet/approvals/"+c1+"/options", b.csrf, map[string]any{})
	wantStatus(t, "assertion options", o, 200, "challenge")
	ro, err := virtualwebauthn.ParseAssertionOptions(o.body)
	if err != nil {
		t.Fatal(err)
	}
	as := json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *ro))
	wantStatus(t, "without token", b.fetch("/wallet/approvals/"+c1+"/passkey", "", as), 403, "did not come from this wallet")
	wantStatus(t, "for another payment", b.fetch("/wallet/approvals/"+c2+"/passkey", b.csrf, as), 400, "passkey")
	wantStatus(t, "passkey approval", b.fetch("/wallet/approvals/"+c1+"/passkey", b.csrf, as), 200, "done=approved")
	wantStatus(t, "replayed", b.fetch("/wallet/approvals/"+c1+"/passkey", b.csrf, as), 409, "no longer waits")
	if s := w.ok(200, w.call("GET", "/v1/payments/"+p1, w.userKey, "", nil)).str("status"); s != "captured" && s != "authorized" {
		t.Fatalf("approved by passkey: %s", s)
	}

	// One-time code.
	e := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "", nil))
	secret, _ := stepup.DecodeTOTPSecret(e.str("secret"))
	w.ok(200, w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": stepup.TOTPCode(secret, clock.Now())}))
	clock.Advance(stepup.TOTPStep)
	b.get("/wallet/approvals")
	wantStatus(t, "wrong code", b.form("/wallet/approvals/"+c2+"/code", url.Values{"idem": {"c2-bad"}, "code": {"000000"}}), 400, "")
	wantStatus(t, "no code", b.form("/wallet/approvals/"+c2+"/code", url.Values{"idem": {"c2-none"}}), 400, "enter the 6 digits")
	if r := b.form("/wallet/approvals/"+c2+"/code", url.Values{"idem": {"c2"}, "code": {stepup.TOTPCode(secret, clock.Now())}}); r.status != 303 {
		t.Fatalf("code approval: %d %.500s", r.status, r.body)
	}
	if s := w.ok(200, w.call("GET", "/v1/payments/"+p2, w.userKey, "", nil)).str("status"); s != "captured" && s != "authorized" {
		t.Fatalf("approved by code: %s", s)
	}

	// Deny, twice with the same form.
	for range 2 {
		if r := b.form("/wallet/approvals/"+c3+"/deny", url.Values{"idem": {"c3"}}); r.status != 303 {
			t.Fatalf("deny: %d %.500s", r.status, r.body)
		}
	}
	if s := w.ok(200, w.call("GET", "/v1/payments/"+p3, w.userKey, "", nil)).str("status"); s != "declined" && s != "canceled" {
		t.Fatalf("denied: %s", s)
	}
	if avail, _ := w.balance(w.userKey, "USD"); avail != avail0-4000 {
		t.Fatalf("available %d, want %d (two approved of 20.00)", avail, avail0-4000)
	}
	wantStatus(t, "nothing left", b.get("/wallet/approvals"), 200, "Nothing is waiting for you")
	w.verify()
}

// TestWalletMandates: Ada grants her agent a mandate through the form;
// bad input is refused with the field named and creates nothing; the
// agent pays under it and the budget bar moves; she replaces it, then
// revokes the replacement, and the agent's next payment is declined.
func TestWalletMandates(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	f := b.get("/wallet/mandates/new?agent=" + w.agent)
	wantStatus(t, "form", f, 200, "Most per payment")
	for _, s := range []string{"One payment larger than this is declined", "renews at the start of the next one", "waits for your approval", `value="` + w.agent + `"`} {
		if !strings.Contains(f.body, s) {
			t.Errorf("form lacks %q", s)
		}
	}
	good := url.Values{"agent_id": {w.agent}, "description": {"coffee"}, "currency": {"USD"}, "max_amount": {"20.00"},
		"budget": {"50.00"}, "period": {"week"}, "confirm_above": {"15.00"}, "idem": {"m1"}}
	with := func(k, v string) url.Values {
		u := url.Values{}
		for kk, vv := range good {
			u[kk] = vv
		}
		u.Set(k, v)
		u.Set("idem", "bad-"+k)
		return u
	}
	for _, c := range []struct {
		vals url.Values
		want string
	}{
		{with("agent_id", ""), "say which agent"},
		{with("max_amount", "lots"), ""},
		{with("budget", ""), "budget is required"},
		{with("currency", "XXQ"), ""},
		{with("period", "fortnight"), ""},
		{with("expires_at", "soon"), "the end date must be a date"},
		{with("agent_id", "agt_00000000000000000000000000"), ""},
	} {
		r := b.form("/wallet/mandates", c.vals)
		if r.status < 400 || r.status >= 500 || !strings.Contains(r.body, c.want) || !strings.Contains(r.body, `class="error"`) {
			t.Errorf("bad mandate %v: %d %.400s", c.vals, r.status, r.body)
		}
	}
	if l := w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil)); len(l.body["data"].([]any)) != 0 {
		t.Fatalf("refused forms created mandates: %s", l.raw)
	}
	for range 2 { // submitted twice: one mandate
		if r := b.form("/wallet/mandates", good); r.status != 303 {
			t.Fatalf("create: %d %.600s", r.status, r.body)
		}
	}
	ms := w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil)).body["data"].([]any)
	if len(ms) != 1 {
		t.Fatalf("mandates: %d", len(ms))
	}
	mid := ms[0].(map[string]any)["id"].(string)
	agentPay := func(mandate string, amount int) resp {
		return w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": amount, "currency": "USD", "merchant_id": w.merch, "mandate_id": mandate})
	}
	w.ok(201, agentPay(mid, 1000))
	page := b.get("/wallet/mandates")
	wantStatus(t, "mandates", page, 200, "10.00 USD used, 40.00 USD left")
	if !strings.Contains(page.body, `<rect width="20" height="6" class="used"/>`) {
		t.Errorf("budget bar: %.3000s", page.body)
	}
	// Replace: the form comes filled in; the new one is in force, the old revoked.
	rf := b.get("/wallet/mandates/new?replace=" + mid)
	wantStatus(t, "replace form", rf, 200, `value="`+mid+`"`)
	repl := url.Values{"replace": {mid}, "agent_id": {w.agent}, "description": {"more coffee"}, "currency": {"USD"}, "max_amount": {"25.00"},
		"budget": {"80.00"}, "period": {"week"}, "idem": {"m2"}}
	if r := b.form("/wallet/mandates", repl); r.status != 303 || !strings.Contains(r.header.Get("Location"), "replaced") {
		t.Fatalf("replace: %d %.600s", r.status, r.body)
	}
	if r := agentPay(mid, 500); r.status != 402 || r.errField("code") != "mandate_revoked" {
		t.Fatalf("old mandate after replace: %d %s", r.status, r.raw)
	}
	ms = w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil)).body["data"].([]any)
	var nid string
	for _, m := range ms {
		if mm := m.(map[string]any); mm["id"] != mid {
			nid = mm["id"].(string)
		}
	}
	w.ok(201, agentPay(nid, 2500))
	// An agent card of the mandate: its number shown once.
	b.get("/wallet/mandates")
	c := b.form("/wallet/mandates/"+nid+"/card", url.Values{"idem": {"card-1"}})
	wantStatus(t, "card", c, 201, "it is shown this once")
	if !regexp.MustCompile(`<dt>Number</dt><dd><code>\d{12,19}</code>`).MatchString(c.body) || !strings.Contains(c.body, nid) {
		t.Fatalf("card page: %.2000s", c.body)
	}
	again := b.form("/wallet/mandates/"+nid+"/card", url.Values{"idem": {"card-1"}})
	if again.status < 400 || strings.Contains(again.body, "<dt>Number</dt>") || !strings.Contains(again.body, "shown once") {
		t.Fatalf("card again: %d %.500s", again.status, again.body)
	}
	wantStatus(t, "another's mandate card", newBrowserSignedIn(t, w.m.URL(), w.merchKey).form("/wallet/mandates/"+nid+"/card", url.Values{"idem": {"c"}}), 403, "")
	// Revoke it from the page; the agent's next payment is declined.
	b.get("/wallet/mandates")
	wantStatus(t, "revoke without token", b.form("/wallet/mandates/"+nid+"/revoke", url.Values{"idem": {"r"}, "csrf": {""}}), 403, "")
	w.ok(201, agentPay(nid, 100))
	if r := b.form("/wallet/mandates/"+nid+"/revoke", url.Values{"idem": {"r"}}); r.status != 303 {
		t.Fatalf("revoke: %d %.500s", r.status, r.body)
	}
	if r := agentPay(nid, 100); r.status != 402 || r.errField("code") != "mandate_revoked" {
		t.Fatalf("after revoke: %d %s", r.status, r.raw)
	}
	// Another user's mandate can't be revoked or replaced from Bob's wallet.
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bob"}))
	bob := newBrowser(t, w.m.URL())
	bob.signIn(u.str("api_key"))
	wantStatus(t, "Bob replaces Ada's", bob.get("/wallet/mandates/new?replace="+mid), 404, "")
	bob.get("/wallet/mandates")
	if r := bob.form("/wallet/mandates/"+mid+"/revoke", url.Values{"idem": {"x"}}); r.status != 404 {
		t.Fatalf("Bob revoked Ada's: %d", r.status)
	}
	if strings.Contains(bob.get("/wallet/mandates").body, mid) || strings.Contains(bob.get("/wallet/agents").body, w.agent) {
		t.Fatal("Bob sees Ada's mandate or agent")
	}
	w.verify()
}

// TestWalletAgents: the Agents page shows each agent with its keys, spend
// and mandates; revoking a key there stops it signing; stopping the agent
// revokes all its mandates.
func TestWalletAgents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	_, jwk := newSigner(t)
	w.ok(201, w.call("POST", "/v1/agents/"+w.agent+"/keys", w.userKey, "", map[string]any{"public_key": json.RawMessage(jwk)}))
	m := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "errands", "currency": "USD", "max_amount": 5000,
		"budget": map[string]any{"amount": 20000, "period": "month"}})).str("id")
	w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 700, "currency": "USD", "merchant_id": w.merch, "mandate_id": m}))
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	a := b.get("/wallet/agents")
	wantStatus(t, "agents", a, 200, w.agent)
	for _, s := range []string{"7.00 USD spent", "bearer 1×", "1 mandate(s) in force", "Revoke key", "active"} {
		if !strings.Contains(a.body, s) {
			t.Errorf("agents page lacks %q", s)
		}
	}
	keys := w.ok(200, w.call("GET", "/v1/agents/"+w.agent+"/keys", w.userKey, "", nil)).body["data"].([]any)
	kid := keys[0].(map[string]any)["keyid"].(string)
	if r := b.form("/wallet/agents/"+w.agent+"/keys/"+kid+"/revoke", url.Values{"idem": {"k"}}); r.status != 303 {
		t.Fatalf("revoke key: %d %.500s", r.status, r.body)
	}
	keys = w.ok(200, w.call("GET", "/v1/agents/"+w.agent+"/keys", w.userKey, "", nil)).body["data"].([]any)
	if keys[0].(map[string]any)["revoked_at"] == nil {
		t.Fatal("key not revoked")
	}
	if r := b.form("/wallet/agents/"+w.agent+"/stop", url.Values{"idem": {"s"}}); r.status != 303 {
		t.Fatalf("stop: %d %.500s", r.status, r.body)
	}
	if r := w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch, "mandate_id": m}); r.status != 402 {
		t.Fatalf("after stop: %d %s", r.status, r.raw)
	}
	wantStatus(t, "stop unknown agent", b.form("/wallet/agents/agt_00000000000000000000000000/stop", url.Values{"idem": {"s2"}}), 404, "no mandate for agent")
	// Revoked for good: its key authenticates nothing, and the page says so.
	wantStatus(t, "revoke unknown agent", b.form("/wallet/agents/agt_00000000000000000000000000/revoke", url.Values{"idem": {"r0"}}), 404, "no agent")
	w.ok(200, w.call("GET", "/v1/payments", w.agentKey, "", nil))
	if r := b.form("/wallet/agents/"+w.agent+"/revoke", url.Values{"idem": {"r"}}); r.status != 303 {
		t.Fatalf("revoke agent: %d %.500s", r.status, r.body)
	}
	if r := w.call("GET", "/v1/payments", w.agentKey, "", nil); r.status != 401 {
		t.Fatalf("the revoked agent's key: %d %s", r.status, r.raw)
	}
	wantStatus(t, "agents after the revocation", b.get("/wallet/agents?done=revoked"), 200, "The agent is revoked")
	if a := b.get("/wallet/agents"); !strings.Contains(a.body, "Revoked 20") || strings.Contains(a.body, "/agents/"+w.agent+"/revoke") {
		t.Errorf("the agents page after the revocation: %.2000s", a.body)
	}
	w.verify()
}

func newBrowserSignedIn(t *testing.T, base, key string) *browser {
	b := newBrowser(t, base)
	b.signIn(key)
	b.get("/wallet/")
	return b
}
