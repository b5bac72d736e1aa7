package main

import (
	"strings"
	"testing"
	"time"
)

// TestTokenPayGraduatedPrice: a graduated price charges each unit of a
// customer's month at its tier's price, exactly, from the ledger; the
// invoice shows a line per tier; a reservation's estimate is held at the
// highest tier's price; a new month starts the count again; bad tiers are
// refused with the tier's parameter and store nothing.
func TestTokenPayGraduatedPrice(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	tier := func(upTo any, unit string) map[string]any { return map[string]any{"up_to": upTo, "unit_price": unit} }
	for _, c := range []struct {
		body        map[string]any
		code, param string
	}{
		{map[string]any{"model": "g", "currency": "USD", "tiers": []any{tier(100, "1")}}, "parameter_invalid", "tiers[0].up_to"},
		{map[string]any{"model": "g", "currency": "USD", "tiers": []any{tier(nil, "1"), tier(nil, "1")}}, "parameter_missing", "tiers[0].up_to"},
		{map[string]any{"model": "g", "currency": "USD", "tiers": []any{tier(5, "1"), tier(3, "1"), tier(nil, "1")}}, "parameter_invalid", "tiers[1].up_to"},
		{map[string]any{"model": "g", "currency": "USD", "tiers": []any{tier(5, "1"), tier(nil, "-1")}}, "parameter_invalid", "tiers[1].unit_price"},
		{map[string]any{"model": "g", "currency": "USD", "unit_price": "1", "tiers": []any{tier(nil, "1")}}, "parameter_invalid", "unit_price"},
		{map[string]any{"model": "g", "currency": "USD", "tiers": []any{}}, "parameter_invalid", "tiers"},
	} {
		if r := w.call("POST", "/v1/billing/prices", mk, "", c.body); r.status != 400 || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("price %v: %d %s; want %s (%s)", c.body, r.status, r.raw, c.code, c.param)
		}
	}
	if ps := w.ok(200, w.call("GET", "/v1/billing/prices", mk, "", nil)); len(ps.body["data"].([]any)) != 0 {
		t.Fatalf("refused prices were stored: %s", ps.raw)
	}
	// A cent a token for the month's first 100, half a cent after.
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "g", "currency": "USD", "tiers": []any{tier(100, "10000"), tier(nil, "5000")}}))
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 1000, "currency": "USD"}))
	if r := w.ok(200, w.call("POST", "/v1/billing/reservations", mk, "", map[string]any{"customer": w.user, "estimate": 10, "model": "g"})); r.body["allowed"] != true || r.num("amount") != 10 {
		t.Fatalf("an estimate is held at the highest tier: %s", r.raw)
	} else {
		w.ok(200, w.call("POST", "/v1/billing/reservations/"+r.str("reservation_id")+"/release", mk, "", nil))
	}
	charged := func(ev resp) int64 {
		t.Helper()
		if eventStatuses(ev) != "accepted" {
			t.Fatalf("events: %s", ev.raw)
		}
		return int64(ev.body["data"].([]any)[0].(map[string]any)["charged"].(float64))
	}
	if c := charged(w.events(map[string]any{"id": "g1", "customer": w.user, "model": "g", "usage": map[string]any{"output": 80}})); c != 80 {
		t.Fatalf("80 tokens in the first tier: charged %d", c)
	}
	// 20 more at a cent, 30 at half: 35.
	if c := charged(w.events(map[string]any{"id": "g2", "customer": w.user, "model": "g", "usage": map[string]any{"output": 50}})); c != 35 {
		t.Fatalf("50 tokens across the tiers: charged %d, want 35", c)
	}
	if a, _, g := w.creditOf(mk, "", w.user, "USD"); a != 885 || g != 885 {
		t.Fatalf("credit: %d %d, want 885", a, g)
	}
	inv := w.ok(200, w.call("POST", "/v1/billing/invoices", mk, "", map[string]any{"customer": w.user, "period": "2026-11", "currency": "USD"}))
	lines := inv.body["lines"].([]any)
	if len(lines) != 2 || inv.num("usage") != 115 || inv.num("credits_applied") != 115 {
		t.Fatalf("invoice: %s", inv.raw)
	}
	for i, want := range []struct {
		tier        float64
		unit        string
		qty, amount float64
		amountExact string
	}{{1, "10000.00", 100, 100, "1.00"}, {2, "5000.00", 30, 15, "0.15"}} {
		l := lines[i].(map[string]any)
		if l["tier"] != want.tier || l["unit_price"] != want.unit || l["quantity"] != want.qty || l["amount"] != want.amount || l["amount_exact"] != want.amountExact {
			t.Errorf("invoice line %d: %v, want %+v", i, l, want)
		}
	}
	csv := w.ok(200, w.call("GET", "/v1/billing/invoices/"+inv.str("id")+"?format=csv", mk, "", nil))
	if rows := strings.Split(string(csv.raw), "\n"); !strings.Contains(rows[0], ",price_version,tier,unit_price_per_1m,") ||
		!strings.HasSuffix(rows[1], ",1,1,10000.00,100,1.00,100") || !strings.HasSuffix(rows[2], ",1,2,5000.00,30,0.15,15") {
		t.Fatalf("csv:\n%s", csv.raw)
	}
	// December starts the count again.
	clock.Advance(25 * 24 * time.Hour)
	if c := charged(w.events(map[string]any{"id": "g3", "customer": w.user, "model": "g", "usage": map[string]any{"output": 10}})); c != 10 {
		t.Fatalf("a new month's first tokens: charged %d, want 10", c)
	}
	w.verify()
}
