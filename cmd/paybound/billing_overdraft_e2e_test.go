package main

import (
	"testing"
	"time"
)

// overdraftOf reads what customer owes on its overdraft in cur, and what
// open reservations hold of it (the ledger's overdraft account).
func (w *world) overdraftOf(key, customer, cur string) (owed, reserved int64) {
	w.t.Helper()
	r := w.ok(200, w.call("GET", "/v1/billing/customers/"+customer+"/balance", key, "", nil))
	for _, b := range r.body["balances"].([]any) {
		m := b.(map[string]any)
		if m["currency"] == cur {
			return int64(m["overdraft_owed"].(float64)), int64(m["overdraft_reserved"].(float64))
		}
	}
	return 0, 0
}

// subscribeFree makes a plan of body (no fee) and subscribes the world's
// user to it.
func (w *world) subscribeFree(body map[string]any) (plan, sub string) {
	w.t.Helper()
	p := w.ok(201, w.call("POST", "/v1/billing/plans", w.merchKey, "", body))
	s := w.ok(201, w.call("POST", "/v1/billing/subscriptions", w.userKey, "", map[string]any{"provider": w.merch, "plan": p.str("id")}))
	return p.str("id"), s.str("id")
}

func (w *world) reserve(amount int64) resp {
	w.t.Helper()
	return w.ok(200, w.call("POST", "/v1/billing/reservations", w.merchKey, "", map[string]any{"customer": w.user, "amount": amount, "currency": "USD"}))
}

// TestTokenPayOverdraft: a plan whose overage is "allow" lets a subscriber
// reserve and use past its credit, on a real negative balance in the
// ledger, up to the overdraft cap (then overdraft_cap); usage past the cap
// is uncollected; the next recharge pays the overdraft back first and
// grants the rest; the invoice shows what the overdraft paid; once the
// subscription's month is over without renewal, the customer is blocked
// at its credit again. Bad plans are refused and change nothing.
func TestTokenPayOverdraft(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "m", "currency": "USD", "unit_price": "10000"})) // a token a cent
	for _, c := range []struct {
		body        map[string]any
		code, param string
	}{
		{map[string]any{"name": "X", "currency": "USD", "overage": "maybe"}, "parameter_invalid", "overage"},
		{map[string]any{"name": "X", "currency": "USD", "overage": "allow"}, "parameter_missing", "overdraft_cap"},
		{map[string]any{"name": "X", "currency": "USD", "overage": "block", "overdraft_cap": 50}, "parameter_invalid", "overdraft_cap"},
		{map[string]any{"name": "X", "currency": "USD", "overage": "allow", "overdraft_cap": -5}, "parameter_invalid", "overdraft_cap"},
		{map[string]any{"name": "X", "currency": "USD", "usage_cap": -1}, "parameter_invalid", "usage_cap"},
	} {
		if r := w.call("POST", "/v1/billing/plans", mk, "", c.body); r.status != 400 || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("plan %v: %d %s; want %s (%s)", c.body, r.status, r.raw, c.code, c.param)
		}
	}
	if ps := w.ok(200, w.call("GET", "/v1/billing/plans", mk, "", nil)); len(ps.body["data"].([]any)) != 0 {
		t.Fatalf("refused plans were stored: %s", ps.raw)
	}
	// Before any plan: blocked at the credit, as ever.
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 100, "currency": "USD"}))
	if r := w.reserve(101); r.body["allowed"] != false || r.str("reason") != "insufficient_credit" {
		t.Fatalf("past the credit without a plan: %s", r.raw)
	}
	_, sub := w.subscribeFree(map[string]any{"name": "Flex", "currency": "USD", "overage": "allow", "overdraft_cap": 50})

	r1 := w.reserve(120) // 100 of credit, 20 of overdraft
	if r1.body["allowed"] != true || r1.num("available") != 30 {
		t.Fatalf("a reservation into the overdraft: %s", r1.raw)
	}
	if owed, held := w.overdraftOf(mk, w.user, "USD"); owed != 0 || held != 20 {
		t.Fatalf("overdraft after the reservation: owed %d, reserved %d", owed, held)
	}
	if r := w.reserve(31); r.body["allowed"] != false || r.str("reason") != "overdraft_cap" || r.num("available") != 30 {
		t.Fatalf("past the overdraft cap: %s", r.raw)
	}
	// Settled for 110: 100 from the credit, 10 from the overdraft; the
	// other 10 held are released.
	ev := w.events(map[string]any{"id": "e1", "customer": w.user, "reservation": r1.str("reservation_id"), "model": "m", "usage": map[string]any{"output": 110}})
	d := ev.body["data"].([]any)[0].(map[string]any)
	if eventStatuses(ev) != "accepted" || d["charged"].(float64) != 100 || d["overdraft"].(float64) != 10 {
		t.Fatalf("the settling event: %s", ev.raw)
	}
	if owed, held := w.overdraftOf(mk, w.user, "USD"); owed != 10 || held != 0 {
		t.Fatalf("overdraft after the settlement: owed %d, reserved %d", owed, held)
	}
	// 50 more without a reservation: 40 reach the cap, 10 are uncollected.
	ev = w.events(map[string]any{"id": "e2", "customer": w.user, "model": "m", "usage": map[string]any{"output": 50}})
	d = ev.body["data"].([]any)[0].(map[string]any)
	if d["charged"].(float64) != 0 || d["overdraft"].(float64) != 40 || d["uncollected"].(float64) != 10 {
		t.Fatalf("an event past the cap: %s", ev.raw)
	}
	if r := w.reserve(1); r.body["allowed"] != false || r.str("reason") != "overdraft_cap" || r.num("available") != 0 {
		t.Fatalf("at the cap: %s", r.raw)
	}
	if a, res, g := w.creditOf(mk, "", w.user, "USD"); a != 0 || res != 0 || g != 0 {
		t.Fatalf("credit at the cap: %d %d %d", a, res, g)
	}
	if owed, _ := w.overdraftOf(mk, w.user, "USD"); owed != 50 {
		t.Fatalf("owed at the cap: %d", owed)
	}
	w.verify()

	inv := w.ok(200, w.call("POST", "/v1/billing/invoices", mk, "", map[string]any{"customer": w.user, "period": "2026-11", "currency": "USD"}))
	if inv.num("usage") != 160 || inv.num("credits_applied") != 100 || inv.num("overdraft") != 50 || inv.num("amount_due") != 60 {
		t.Fatalf("the invoice: %s", inv.raw)
	}

	// A recharge of 80 pays the 50 owed first; 30 become credit.
	wallet0, _ := w.balance(w.userKey, "USD")
	p := w.ok(201, w.call("POST", "/v1/billing/recharges", w.userKey, "", map[string]any{"provider": w.merch, "amount": 80, "currency": "USD"}))
	if p.str("status") != "captured" {
		t.Fatalf("recharge: %s", p.raw)
	}
	if a, _ := w.balance(w.userKey, "USD"); a != wallet0-80 {
		t.Fatalf("wallet after the recharge: %d, want %d", a, wallet0-80)
	}
	if owed, _ := w.overdraftOf(mk, w.user, "USD"); owed != 0 {
		t.Fatalf("owed after the recharge: %d", owed)
	}
	if a, _, g := w.creditOf(mk, "", w.user, "USD"); a != 30 || g != 30 {
		t.Fatalf("credit after the recharge: available %d, granted %d; want 30", a, g)
	}
	if r := w.reserve(80); r.body["allowed"] != true || r.num("available") != 0 {
		t.Fatalf("30 of credit and 50 of overdraft again: %s", r.raw)
	}
	w.verify()

	// Canceled, the subscription's terms lapse at its month's end: the
	// customer is blocked at its credit again.
	w.ok(200, w.call("POST", "/v1/billing/subscriptions/"+sub+"/cancel", w.userKey, "", nil))
	clock.Advance(31 * 24 * time.Hour)
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 5, "currency": "USD"}))
	if r := w.reserve(6); r.body["allowed"] != false || r.str("reason") != "insufficient_credit" || r.num("available") != 5 {
		t.Fatalf("past the credit after the plan lapsed: %s", r.raw)
	}
	w.verify()
}

// TestTokenPayPlanCap: a plan's usage cap refuses a reservation that would
// take the month's usage and open reservations past it (plan_cap), and
// counts usage as it is acknowledged; the credit is untouched by a refusal.
func TestTokenPayPlanCap(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "m", "currency": "USD", "unit_price": "10000"}))
	w.subscribeFree(map[string]any{"name": "Capped", "currency": "USD", "included_credit": 1000, "usage_cap": 300})
	r1 := w.reserve(200)
	if r1.body["allowed"] != true {
		t.Fatalf("under the cap: %s", r1.raw)
	}
	if r := w.reserve(150); r.body["allowed"] != false || r.str("reason") != "plan_cap" {
		t.Fatalf("past the cap: %s", r.raw)
	}
	if a, res, _ := w.creditOf(mk, "", w.user, "USD"); a != 800 || res != 200 {
		t.Fatalf("credit after a refusal: available %d, reserved %d", a, res)
	}
	if r := w.reserve(100); r.body["allowed"] != true {
		t.Fatalf("up to the cap: %s", r.raw)
	}
	// The first reservation settles for 50: 50 used, 100 held.
	w.events(map[string]any{"id": "c1", "customer": w.user, "reservation": r1.str("reservation_id"), "model": "m", "usage": map[string]any{"output": 50}})
	if r := w.reserve(150); r.body["allowed"] != true {
		t.Fatalf("after the settlement freed 150: %s", r.raw)
	}
	if r := w.reserve(1); r.body["allowed"] != false || r.str("reason") != "plan_cap" {
		t.Fatalf("at the cap: %s", r.raw)
	}
	if a, res, g := w.creditOf(mk, "", w.user, "USD"); a != 700 || res != 250 || g != 950 {
		t.Fatalf("credit at the cap: %d %d %d", a, res, g)
	}
	w.verify()
}

// TestTokenPayConcurrentOverdraft: 1,000 concurrent reservations of one
// cent against 1.00 of credit and an overdraft cap of 0.50 allow exactly
// 150, and the ledger holds exactly the credit and the cap.
func TestTokenPayConcurrentOverdraft(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	w.subscribeFree(map[string]any{"name": "Flex", "currency": "USD", "included_credit": 100, "overage": "allow", "overdraft_cap": 50})
	if n := reserveManyRefused(t, []*api{w.api}, w.merchKey, w.user, 1000, "overdraft_cap"); n != 150 {
		t.Fatalf("%d reservations allowed, want 150", n)
	}
	if a, r, g := w.creditOf(w.merchKey, "", w.user, "USD"); a != 0 || r != 100 || g != 100 {
		t.Fatalf("credit after the run: available %d, reserved %d, granted %d", a, r, g)
	}
	if owed, r := w.overdraftOf(w.merchKey, w.user, "USD"); owed != 0 || r != 50 {
		t.Fatalf("overdraft after the run: owed %d, reserved %d", owed, r)
	}
	w.verify()
}

// TestTokenPayConcurrentOverdraftTwoProcesses: the same against two
// servers sharing one PostgreSQL database.
func TestTokenPayConcurrentOverdraftTwoProcesses(t *testing.T) {
	w, apis := twoProcesses(t)
	w.subscribeFree(map[string]any{"name": "Flex", "currency": "USD", "included_credit": 100, "overage": "allow", "overdraft_cap": 50})
	if n := reserveManyRefused(t, apis, w.merchKey, w.user, 1000, "overdraft_cap"); n != 150 {
		t.Fatalf("%d reservations allowed across two processes, want 150", n)
	}
	for _, a := range apis {
		w.api = a
		if av, r, g := w.creditOf(w.merchKey, "", w.user, "USD"); av != 0 || r != 100 || g != 100 {
			t.Fatalf("credit after the run (%s): available %d, reserved %d, granted %d", a.base, av, r, g)
		}
		if owed, r := w.overdraftOf(w.merchKey, w.user, "USD"); owed != 0 || r != 50 {
			t.Fatalf("overdraft after the run (%s): owed %d, reserved %d", a.base, owed, r)
		}
	}
	w.verify()
}
