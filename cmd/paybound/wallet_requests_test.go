package main

import (
	"html"
	"net/url"
	"strings"
	"testing"
)

// TestWalletMandateRequests: the Mandates page lists the agents' pending
// requests with their terms in plain words; Ada approves one (the mandate
// is granted once, however often the form is sent) and refuses another;
// without the CSRF token nothing changes; another person neither sees
// Ada's requests nor decides them.
func TestWalletMandateRequests(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ask := func(reason string, extra map[string]any) string {
		body := map[string]any{"description": "groceries for the week", "currency": "USD", "max_amount": 8000,
			"budget": map[string]any{"amount": 20000, "period": "week"}, "merchant_ids": []string{w.merch}, "confirm_above": 5000,
			"reason": reason}
		for k, v := range extra {
			body[k] = v
		}
		return w.ok(201, w.call("POST", "/v1/mandate_requests", w.agentKey, "", body)).str("id")
	}
	r1 := ask("Your fridge is empty & I can order on Mondays", map[string]any{"max_payments": 4,
		"schedule": map[string]any{"days": []string{"mon"}, "start": "08:00", "end": "12:00", "time_zone": "Europe/Paris"}})
	r2 := ask("Just in case", nil)
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	pg := b.get("/wallet/mandates")
	wantStatus(t, "mandates", pg, 200, "Your agents ask")
	text := html.UnescapeString(pg.body)
	for _, s := range []string{r1, r2, w.agent + " asks for a mandate: groceries for the week", "Your fridge is empty & I can order on Mondays",
		"Up to 80.00 USD a payment; 200.00 USD per week; asks you above 50.00 USD; only at " + w.merch + "; mon 08:00–12:00 Europe/Paris.",
		"From when you approve until you revoke it.", "At most 4 payments in all.", "Approve: grant this mandate", "Refuse"} {
		if !strings.Contains(text, s) {
			t.Errorf("the Mandates page lacks %q", s)
		}
	}

	// Without the CSRF token: refused, nothing decided.
	wantStatus(t, "no csrf", b.form("/wallet/mandate_requests/"+r1+"/approve", url.Values{"csrf": {"x"}, "idem": {"k1"}}), 403, "")
	if s := w.ok(200, w.call("GET", "/v1/mandate_requests/"+r1, w.userKey, "", nil)).str("status"); s != "pending" {
		t.Fatalf("a forged approval decided the request: %s", s)
	}
	// Another person: not found, and nothing of Ada's on their page.
	u2 := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bob"}))
	b2 := newBrowser(t, w.m.URL())
	b2.signIn(u2.str("api_key"))
	if p := b2.get("/wallet/mandates"); p.status != 200 || strings.Contains(p.body, r1) || strings.Contains(p.body, "Your agents ask") {
		t.Fatalf("Bob's Mandates page: %d %.300s", p.status, p.body)
	}
	wantStatus(t, "Bob approves Ada's request", b2.form("/wallet/mandate_requests/"+r1+"/approve", url.Values{"idem": {"bob"}}), 404, "no such mandate request")

	// Approve, twice with the same form: one mandate.
	b.get("/wallet/mandates")
	for range 2 {
		if r := b.form("/wallet/mandate_requests/"+r1+"/approve", url.Values{"idem": {"approve-r1"}}); r.status != 303 ||
			r.header.Get("Location") != "/wallet/mandates?done=approved" {
			t.Fatalf("approve: %d %.300s", r.status, r.body)
		}
	}
	// Another form for the same request: already approved.
	wantStatus(t, "approved again", b.form("/wallet/mandate_requests/"+r1+"/approve", url.Values{"idem": {"approve-r1-again"}}), 409, "approved already")
	wantStatus(t, "refuse", b.form("/wallet/mandate_requests/"+r2+"/refuse", url.Values{"idem": {"refuse-r2"}}), 303, "")
	pg = b.get("/wallet/mandates?done=refused")
	wantStatus(t, "after", pg, 200, "Request refused")
	if strings.Contains(pg.body, "Your agents ask") {
		t.Fatalf("decided requests still listed: %.500s", pg.body)
	}
	l := w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil))
	ms := l.body["data"].([]any)
	if len(ms) != 1 || ms[0].(map[string]any)["max_payments"] != float64(4) || !strings.Contains(pg.body, ms[0].(map[string]any)["id"].(string)) {
		t.Fatalf("mandates after the wallet's approval: %s", l.raw)
	}
	w.verify()
}
