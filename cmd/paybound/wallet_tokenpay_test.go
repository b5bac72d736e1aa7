package main

import (
	"strings"
	"testing"
	"time"
)

// TestWalletTokenPay: the Token Pay page shows, per provider, the credit
// a person and each of their agents hold, the grants, and this month's
// usage by model, through billing's own reads; another person sees none
// of it, and a merchant is refused the page.
func TestWalletTokenPay(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	monthAgo := clock.Now().Add(-30 * 24 * time.Hour).Format(time.RFC3339)
	for _, tt := range []string{"input", "output"} {
		w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "gpt-x*", "token_type": tt, "currency": "USD",
			"unit_price": "10", "effective_from": monthAgo}))
	}
	grant := w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 1000, "currency": "USD", "category": "paid"})).str("id")
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.agent, "amount": 250, "currency": "USD", "category": "promotional"}))
	// 30,000 output tokens of gpt-x-mini at 10 USD per million: 0.30 USD;
	// 1,000 input tokens of gpt-x: 0.01 USD.
	w.events(map[string]any{"id": "e1", "customer": w.user, "model": "gpt-x-mini", "usage": map[string]any{"output": 30_000}},
		map[string]any{"id": "e2", "customer": w.user, "model": "gpt-x", "usage": map[string]any{"input": 1000}})
	// Last month's usage is not this month's.
	w.events(map[string]any{"id": "e0", "customer": w.user, "model": "gpt-x-old", "timestamp": time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC).Format(time.RFC3339),
		"usage": map[string]any{"output": 1000}})

	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	r := b.get("/wallet/tokenpay")
	wantStatus(t, "token pay page", r, 200, "Cafe <small>for you</small>")
	for _, want := range []string{
		`<a href="/wallet/tokenpay" aria-current="page">Token Pay</a>`,
		"<code>" + grant + "</code>",
		"Usage by model, November 2026",
		"<td>gpt-x-mini</td><td>llm_tokens</td><td class=\"num\">1</td><td class=\"num\">30000</td><td class=\"num\">0.30 USD</td>",
		"<td>gpt-x</td><td>llm_tokens</td><td class=\"num\">1</td><td class=\"num\">1000</td><td class=\"num\">0.01 USD</td>",
		"<td class=\"num\">9.68 USD</td>", // 10.00 - 0.30 - 0.01 - 0.01 (last month's event)
		"Cafe <small>for " + w.agent + "</small>",
		"<td class=\"num\">2.50 USD</td>",
	} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("token pay page lacks %q: %.5000s", want, r.body)
		}
	}
	if strings.Contains(r.body, "gpt-x-old") {
		t.Fatal("last month's usage is on this month's page")
	}

	other := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bo"})).str("api_key")
	bo := newBrowser(t, w.m.URL())
	bo.signIn(other)
	r = bo.get("/wallet/tokenpay")
	wantStatus(t, "another person's page", r, 200, "Neither you nor your agents have Token Pay credit")
	if strings.Contains(r.body, grant) || strings.Contains(r.body, "Cafe") {
		t.Fatal("another person sees this person's credit")
	}
	m := newBrowser(t, w.m.URL())
	m.signIn(mk)
	wantStatus(t, "a merchant", m.get("/wallet/tokenpay"), 403, "Token Pay credit belongs to people")
	w.verify()
}
