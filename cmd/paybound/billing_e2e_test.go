package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/stepup"
	"github.com/paybound/paybound/internal/storetest"
)

// creditOf reads a customer's credit in cur: available, reserved, granted.
func (w *world) creditOf(key, provider, customer, cur string) (available, reserved, granted int64) {
	w.t.Helper()
	path := "/v1/billing/customers/" + customer + "/balance"
	if provider != "" {
		path += "?provider=" + provider
	}
	r := w.ok(200, w.call("GET", path, key, "", nil))
	for _, b := range r.body["balances"].([]any) {
		m := b.(map[string]any)
		if m["currency"] == cur {
			return int64(m["available"].(float64)), int64(m["reserved"].(float64)), int64(m["granted"].(float64))
		}
	}
	return 0, 0, 0
}

// grantsOf returns each of the customer's grants' remaining, by ID.
func (w *world) grantsOf(customer string) map[string]int64 {
	w.t.Helper()
	r := w.ok(200, w.call("GET", "/v1/billing/customers/"+customer+"/grants", w.merchKey, "", nil))
	out := map[string]int64{}
	for _, g := range r.body["data"].([]any) {
		m := g.(map[string]any)
		out[m["id"].(string)] = int64(m["remaining"].(float64))
	}
	return out
}

func (w *world) events(evs ...map[string]any) resp {
	w.t.Helper()
	return w.ok(200, w.call("POST", "/v1/billing/events", w.merchKey, "-", map[string]any{"events": evs}))
}

func eventStatuses(r resp) string {
	var out []string
	for _, d := range r.body["data"].([]any) {
		m := d.(map[string]any)
		s := m["status"].(string)
		if e, ok := m["error"].(map[string]any); ok {
			s += ":" + e["code"].(string)
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// TestTokenPayOverHTTP: a provider prices a model, grants credit, reserves
// and settles usage; promotional credit goes first; duplicates are counted
// and never charged; a late event lands at its own time and price version,
// a too-late one is refused; fractions of a cent are carried, not lost;
// the customer is cut off at zero; bad input changes nothing; and the
// ledger balances throughout.
func TestTokenPayOverHTTP(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	price := func(tokenType, unit string, from *time.Time) resp {
		body := map[string]any{"model": "gpt-x*", "token_type": tokenType, "currency": "USD", "unit_price": unit}
		if from != nil {
			body["effective_from"] = from.Format(time.RFC3339)
		}
		return w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", body))
	}
	monthAgo := clock.Now().Add(-30 * 24 * time.Hour)
	in := price("input", "2.50", &monthAgo)
	out1 := price("output", "10", &monthAgo)
	if out1.str("unit_price") != "10.00" || out1.num("unit_price_nanos") != 10_000_000_000 || out1.num("version") != 1 || in.str("meter") != "llm_tokens" {
		t.Fatalf("price: %s", out1.raw)
	}
	later := clock.Now().Add(24 * time.Hour)
	out2 := price("output", "20.000000001", &later)
	if out2.num("version") != 2 {
		t.Fatalf("second version: %s", out2.raw)
	}

	// Credit: a paid grant, then a promotional one at the same priority.
	paid := w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 1000, "currency": "USD", "category": "paid"}))
	promo := w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 300, "currency": "USD", "category": "promotional",
		"expires_at": clock.Now().Add(30 * 24 * time.Hour).Format(time.RFC3339)}))
	if a, r, g := w.creditOf(mk, "", w.user, "USD"); a != 1300 || r != 0 || g != 1300 {
		t.Fatalf("credit after grants: %d %d %d", a, r, g)
	}
	if a, _, _ := w.creditOf(w.userKey, w.merch, w.user, "USD"); a != 1300 {
		t.Fatalf("the customer reads its own credit: %d", a)
	}

	// Reserve 100,000 output tokens (1.00 USD), settle 0.75 USD of usage.
	rsv := w.ok(200, w.call("POST", "/v1/billing/reservations", mk, "", map[string]any{"customer": w.user, "estimate": 100_000, "model": "gpt-x-mini"}))
	if rsv.body["allowed"] != true || rsv.num("amount") != 100 || rsv.num("available") != 1200 || !strings.HasPrefix(rsv.str("reservation_id"), "rsv_") {
		t.Fatalf("reservation: %s", rsv.raw)
	}
	if a, r, _ := w.creditOf(mk, "", w.user, "USD"); a != 1200 || r != 100 {
		t.Fatalf("credit while reserved: %d %d", a, r)
	}
	ev := w.events(map[string]any{"id": "req-1", "customer": w.user, "model": "gpt-x-mini", "reservation": rsv.str("reservation_id"),
		"usage": map[string]any{"input": 100_000, "output": 50_000}})
	if eventStatuses(ev) != "accepted" || ev.num("accepted") != 1 {
		t.Fatalf("event: %s", ev.raw)
	}
	if a, r, g := w.creditOf(mk, "", w.user, "USD"); a != 1225 || r != 0 || g != 1225 {
		t.Fatalf("credit after the settled event: %d %d %d; want 1225 available, nothing reserved", a, r, g)
	}
	gs := w.grantsOf(w.user)
	if gs[promo.str("id")] != 225 || gs[paid.str("id")] != 1000 {
		t.Fatalf("grants after 75 of usage: %v; the promotional one goes first", gs)
	}
	if r := w.ok(200, w.call("GET", "/v1/billing/reservations/"+rsv.str("reservation_id"), mk, "", nil)); r.str("status") != "settled" || r.num("settled") != 75 {
		t.Fatalf("reservation after settling: %s", r.raw)
	}

	// The same event again, alone and twice in one batch: counted, not charged.
	dup := w.events(map[string]any{"id": "req-1", "customer": w.user, "model": "gpt-x-mini", "usage": map[string]any{"input": 1}},
		map[string]any{"id": "req-2", "customer": w.user, "model": "gpt-x-mini", "usage": map[string]any{"output": 1000}},
		map[string]any{"id": "req-2", "customer": w.user, "model": "gpt-x-mini", "usage": map[string]any{"output": 1000}})
	if eventStatuses(dup) != "duplicate,accepted,duplicate" || dup.num("duplicates") != 2 {
		t.Fatalf("duplicates: %s", dup.raw)
	}
	// req-2 cost 1 cent exactly.
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 1224 {
		t.Fatalf("credit after duplicates: %d, want 1224", a)
	}

	// Fractions: 3,000 input tokens cost 0.75 cent; four cost 3 cents.
	for i := range 4 {
		w.events(map[string]any{"id": fmt.Sprintf("frac-%d", i), "customer": w.user, "model": "gpt-x", "usage": map[string]any{"input": 3000}})
	}
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 1221 {
		t.Fatalf("credit after four 0.75-cent events: %d, want 1221", a)
	}

	// A late event (two days ago) and one too late (40 days ago).
	late := w.events(map[string]any{"id": "late-1", "customer": w.user, "model": "gpt-x", "timestamp": clock.Now().Add(-48 * time.Hour).Format(time.RFC3339),
		"usage": map[string]any{"output": 1000}},
		map[string]any{"id": "late-2", "customer": w.user, "model": "gpt-x", "timestamp": clock.Now().Add(-40 * 24 * time.Hour).Format(time.RFC3339),
			"usage": map[string]any{"output": 1000}})
	if eventStatuses(late) != "accepted,refused:billing_event_too_late" {
		t.Fatalf("late events: %s", late.raw)
	}

	// The price's second version applies from its effective_from on.
	clock.Advance(25 * time.Hour)
	w.events(map[string]any{"id": "v2-1", "customer": w.user, "model": "gpt-x", "usage": map[string]any{"output": 1000}})
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 1220-2 {
		t.Fatalf("credit after an event at the second version: %d, want %d", a, 1218)
	}
	u := w.ok(200, w.call("GET", "/v1/billing/customers/"+w.user+"/usage?group_by=token_type,price&from="+
		clock.Now().Add(-10*24*time.Hour).Format(time.RFC3339), mk, "", nil))
	got := map[string]string{}
	for _, d := range u.body["data"].([]any) {
		m := d.(map[string]any)
		k := m["keys"].(map[string]any)
		got[k["token_type"].(string)+"@"+k["price"].(string)] = fmt.Sprintf("%v/%v/%v", m["quantity"], m["amount_exact"], m["charged"])
	}
	want := map[string]string{
		"input@" + in.str("id"):    "112000/0.28/28", // 100,000 + 4 × 3,000 tokens at 2.50
		"output@" + out1.str("id"): "52000/0.52/52",  // 50,000 + 1,000 + 1,000 (late) at 10
		"output@" + out2.str("id"): "1000/0.020000000001/2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("usage by token type and price:\n got %v\nwant %v", got, want)
	}

	// Cut off: more than is left is refused with the reason; a customer
	// without credit has none.
	big := w.ok(200, w.call("POST", "/v1/billing/reservations", mk, "", map[string]any{"customer": w.user, "amount": 1219, "currency": "USD"}))
	if big.body["allowed"] != false || big.str("reason") != "insufficient_credit" || big.num("available") != 1218 {
		t.Fatalf("a reservation above the credit: %s", big.raw)
	}
	none := w.ok(200, w.call("POST", "/v1/billing/reservations", mk, "", map[string]any{"customer": w.agent, "amount": 1, "currency": "USD"}))
	if none.body["allowed"] != false || none.str("reason") != "no_credit" {
		t.Fatalf("a reservation without credit: %s", none.raw)
	}

	// Bad input: a coded error each, and nothing changed.
	for _, c := range []struct {
		path        string
		key         string
		body        any
		status      int
		code, param string
	}{
		{"/v1/billing/prices", mk, map[string]any{"currency": "USD", "unit_price": "1.0000000001"}, 400, "parameter_invalid", "unit_price"},
		{"/v1/billing/prices", mk, map[string]any{"currency": "USD", "unit_price": "-1"}, 400, "parameter_invalid", "unit_price"},
		{"/v1/billing/prices", mk, map[string]any{"currency": "USD", "unit_price": "1e3"}, 400, "parameter_invalid", "unit_price"},
		{"/v1/billing/prices", mk, map[string]any{"currency": "USD"}, 400, "parameter_missing", "unit_price"},
		{"/v1/billing/prices", mk, map[string]any{"currency": "USD", "unit_price": "1", "token_type": "thinking"}, 400, "parameter_invalid", "token_type"},
		{"/v1/billing/prices", mk, map[string]any{"currency": "USD", "unit_price": "1", "model": "gpt*x"}, 400, "parameter_invalid", "model"},
		{"/v1/billing/prices", mk, map[string]any{"model": "gpt-x*", "token_type": "output", "currency": "USD", "unit_price": "1",
			"effective_from": clock.Now().Add(-72 * time.Hour).Format(time.RFC3339)}, 400, "parameter_invalid", "effective_from"},
		{"/v1/billing/prices", w.userKey, map[string]any{"currency": "USD", "unit_price": "1"}, 403, "forbidden", ""},
		{"/v1/billing/grants", mk, map[string]any{"customer": w.user, "amount": 0, "currency": "USD"}, 400, "invalid_amount", "amount"},
		{"/v1/billing/grants", mk, map[string]any{"customer": w.user, "amount": 10, "currency": "USD", "category": "gift"}, 400, "parameter_invalid", "category"},
		{"/v1/billing/grants", mk, map[string]any{"customer": "usr_00000000000000000000000000", "amount": 10, "currency": "USD"}, 404, "resource_missing", "customer"},
		{"/v1/billing/grants", mk, map[string]any{"customer": w.user, "amount": 10, "currency": "USD", "expires_at": clock.Now().Add(-time.Hour).Format(time.RFC3339)}, 400, "parameter_invalid", "expires_at"},
		{"/v1/billing/reservations", mk, map[string]any{"customer": w.user}, 400, "parameter_missing", "estimate"},
		{"/v1/billing/reservations", mk, map[string]any{"customer": w.user, "estimate": 10, "model": "unpriced"}, 400, "billing_no_price", ""},
		{"/v1/billing/reservations", mk, map[string]any{"customer": w.user, "amount": 1, "currency": "USD", "expires_in": 7200}, 400, "parameter_invalid", "expires_in"},
		{"/v1/billing/reservations", mk, map[string]any{"customer": "bob", "amount": 1, "currency": "USD"}, 400, "parameter_invalid", "customer"},
		{"/v1/billing/events", mk, map[string]any{"events": []any{}}, 400, "parameter_invalid", "events"},
		{"/v1/billing/events", mk, map[string]any{"events": make([]map[string]any, 1001)}, 400, "parameter_invalid", "events"},
		{"/v1/billing/events", mk, map[string]any{}, 400, "parameter_missing", "events"},
		{"/v1/billing/events", w.userKey, map[string]any{"events": []any{map[string]any{"id": "x"}}}, 403, "forbidden", ""},
	} {
		r := w.call("POST", c.path, c.key, "", c.body)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("POST %s %v: %d %s; want %d %s (%s)", c.path, c.body, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	bad := w.events(map[string]any{"id": "bad-1", "customer": w.user, "model": "gpt-x", "usage": map[string]any{"thinking": 5}},
		map[string]any{"id": "bad-2", "customer": w.user, "model": "gpt-x", "usage": map[string]any{"output": -1}},
		map[string]any{"id": "bad-3", "customer": w.user, "model": "nope", "usage": map[string]any{"output": 1}},
		map[string]any{"id": "", "customer": w.user, "model": "gpt-x", "usage": map[string]any{"output": 1}},
		map[string]any{"id": "bad-5", "customer": w.user, "model": "gpt-x", "timestamp": clock.Now().Add(time.Hour).Format(time.RFC3339), "usage": map[string]any{"output": 1}})
	if eventStatuses(bad) != "refused:parameter_invalid,refused:parameter_invalid,refused:billing_no_price,refused:parameter_missing,refused:parameter_invalid" {
		t.Fatalf("bad events: %s", bad.raw)
	}
	if a, r, g := w.creditOf(mk, "", w.user, "USD"); a != 1218 || r != 0 || g != 1218 {
		t.Fatalf("credit after refused input: %d %d %d", a, r, g)
	}
	if ps := w.ok(200, w.call("GET", "/v1/billing/prices", mk, "", nil)); len(ps.body["data"].([]any)) != 3 {
		t.Fatalf("prices after refused input: %s", ps.raw)
	}
	if r := w.call("GET", "/v1/billing/customers/"+w.user+"/balance", w.merch2Key, "", nil); r.status != 200 || strings.Contains(string(r.raw), "USD") {
		t.Fatalf("another provider reads the customer's credit: %s", r.raw)
	}
	if r := w.call("GET", "/v1/billing/customers/"+w.user+"/balance?provider="+w.merch, w.agentKey, "", nil); r.status != 404 {
		t.Fatalf("an agent reads its user's credit: %d %s", r.status, r.raw)
	}

	// Voiding the promotional grant withdraws what is left of it.
	v := w.ok(200, w.call("POST", "/v1/billing/grants/"+promo.str("id")+"/void", mk, "", nil))
	if v.str("status") != "voided" || v.num("remaining") != 0 || v.num("withdrawn") != 218 {
		t.Fatalf("voided grant: %s", v.raw)
	}
	if r := w.call("POST", "/v1/billing/grants/"+promo.str("id")+"/void", mk, "", nil); r.status != 409 || r.errField("code") != "billing_grant_state" {
		t.Fatalf("voiding twice: %d %s", r.status, r.raw)
	}
	a, _, _ := w.creditOf(mk, "", w.user, "USD")
	if gs := w.grantsOf(w.user); a != 1000 || gs[promo.str("id")] != 0 || gs[paid.str("id")] != 1000 {
		t.Fatalf("after the void: credit %d, grants %v", a, gs)
	}
	w.verify()
}

// TestTokenPayReservationExpiry: a reservation that is neither settled
// nor released gives its credit back when it expires; an event naming it
// afterwards is charged from the available credit.
func TestTokenPayReservationExpiry(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.agent, "amount": 500, "currency": "EUR"}))
	r := w.ok(200, w.call("POST", "/v1/billing/reservations", w.merchKey, "", map[string]any{"customer": w.agent, "amount": 400, "currency": "EUR", "expires_in": 60}))
	if a, res, _ := w.creditOf(w.merchKey, "", w.agent, "EUR"); a != 100 || res != 400 {
		t.Fatalf("credit while reserved: %d %d", a, res)
	}
	if a, _, _ := w.creditOf(w.userKey, w.merch, w.agent, "EUR"); a != 100 {
		t.Fatalf("the agent's user reads its credit: %d", a)
	}
	clock.Advance(61 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a, res, _ := w.creditOf(w.merchKey, "", w.agent, "EUR"); a == 500 && res == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired reservation still holds credit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g := w.ok(200, w.call("GET", "/v1/billing/reservations/"+r.str("reservation_id"), w.merchKey, "", nil)); g.str("status") != "expired" {
		t.Fatalf("reservation: %s", g.raw)
	}
	if rel := w.call("POST", "/v1/billing/reservations/"+r.str("reservation_id")+"/release", w.merchKey, "", nil); rel.status != 409 {
		t.Fatalf("releasing an expired reservation: %d %s", rel.status, rel.raw)
	}
	w.verify()
}

// reserveMany sends n concurrent reservations of 1 minor unit for
// customer, spread over apis, and counts those allowed; each refused one
// must say insufficient_credit.
func reserveMany(t *testing.T, apis []*api, key, customer string, n int) (allowed int) {
	return reserveManyRefused(t, apis, key, customer, n, "insufficient_credit")
}

// reserveManyRefused is reserveMany where each refusal must give reason.
func reserveManyRefused(t *testing.T, apis []*api, key, customer string, n int, reason string) (allowed int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a := apis[i%len(apis)]
			r := a.call("POST", "/v1/billing/reservations", key, "", map[string]any{"customer": customer, "amount": 1, "currency": "USD"})
			if r.status != 200 {
				t.Errorf("reservation %d: %d %s", i, r.status, r.raw)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if r.body["allowed"] == true {
				allowed++
			} else if r.str("reason") != reason {
				t.Errorf("reservation %d refused for %s", i, r.raw)
			}
		}()
	}
	wg.Wait()
	return allowed
}

// TestTokenPayConcurrentReservations: 1,000 concurrent reservations of one
// cent against 1.00 of credit: exactly 100 are allowed, and the ledger
// holds exactly the credit.
func TestTokenPayConcurrentReservations(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 100, "currency": "USD"}))
	if n := reserveMany(t, []*api{w.api}, w.merchKey, w.user, 1000); n != 100 {
		t.Fatalf("%d reservations allowed, want 100", n)
	}
	if a, r, g := w.creditOf(w.merchKey, "", w.user, "USD"); a != 0 || r != 100 || g != 100 {
		t.Fatalf("credit after the run: available %d, reserved %d, granted %d", a, r, g)
	}
	w.verify()
}

// twoProcesses starts two servers sharing one PostgreSQL database and
// returns a world on the first, with a user and a merchant (their keys),
// and the APIs of both.
func twoProcesses(t *testing.T) (*world, []*api) { return twoProcessesWith(t, nil) }

// twoProcessesWith is twoProcesses with configure applied to both
// servers before they start (nil: nothing).
func twoProcessesWith(t *testing.T, configure func(*Main)) (*world, []*api) {
	db := storetest.PostgresURL(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	conf := func(m *Main) {
		m.Config.DB = db
		if configure != nil {
			configure(m)
		}
	}
	m1 := startMain(t, dir1, conf)
	for _, f := range []string{"operator.key", "log.key"} {
		b, err := os.ReadFile(filepath.Join(dir1, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir2, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m2 := startMain(t, dir2, conf)
	a1, a2 := &api{t: t, base: m1.URL()}, &api{t: t, base: m2.URL()}
	w := &world{api: a1, m: m1, op: m1.OperatorKey}
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Ada"}))
	w.user, w.userKey = u.str("id"), u.str("api_key")
	mc := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Models"}))
	w.merch, w.merchKey = mc.str("id"), mc.str("api_key")
	return w, []*api{a1, a2}
}

// TestTokenPayConcurrentReservationsTwoProcesses: the same against two
// servers sharing one PostgreSQL database.
func TestTokenPayConcurrentReservationsTwoProcesses(t *testing.T) {
	w, apis := twoProcesses(t)
	a1, a2 := apis[0], apis[1]
	u := w.user
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": u, "amount": 100, "currency": "USD"}))
	if n := reserveMany(t, []*api{a1, a2}, w.merchKey, u, 1000); n != 100 {
		t.Fatalf("%d reservations allowed across two processes, want 100", n)
	}
	for _, a := range []*api{a1, a2} {
		w.api = a
		if av, r, g := w.creditOf(w.merchKey, "", u, "USD"); av != 0 || r != 100 || g != 100 {
			t.Fatalf("credit after the run (%s): available %d, reserved %d, granted %d", a.base, av, r, g)
		}
	}
	w.verify()
}

// TestTokenPayRecharge: an agent cut off at zero credit buys more with a
// real payment under its user's mandate, and is served again; a recharge
// above the mandate's limit is declined and grants nothing; a user
// recharges its agent from its own wallet.
func TestTokenPayRecharge(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	mk := w.merchKey
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.agent, "amount": 50, "currency": "USD", "category": "promotional"}))
	r := w.ok(200, w.call("POST", "/v1/billing/reservations", mk, "", map[string]any{"customer": w.agent, "amount": 50, "currency": "USD"}))
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"currency": "USD", "unit_price": "500000"}))
	ev := w.events(map[string]any{"id": "use-all", "customer": w.agent, "reservation": r.str("reservation_id"), "model": "m", "usage": map[string]any{"output": 100}})
	if eventStatuses(ev) != "accepted" || ev.body["data"].([]any)[0].(map[string]any)["charged"].(float64) != 50 {
		t.Fatalf("the event that spends the credit: %s", ev.raw)
	}
	cut := w.ok(200, w.call("POST", "/v1/billing/reservations", mk, "", map[string]any{"customer": w.agent, "amount": 1, "currency": "USD"}))
	if cut.body["allowed"] != false || cut.str("reason") != "insufficient_credit" || cut.num("available") != 0 {
		t.Fatalf("at zero credit: %s", cut.raw)
	}

	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "model credit",
		"currency": "USD", "max_amount": 2000, "budget": map[string]any{"amount": 5000, "period": "week"}}))
	walletBefore, _ := w.balance(w.userKey, "USD")
	merchBefore, _ := w.balance(mk, "USD")
	p := w.ok(201, w.call("POST", "/v1/billing/recharges", w.agentKey, "recharge-1", map[string]any{"provider": w.merch, "amount": 1500,
		"currency": "USD", "mandate_id": mdt.str("id")}))
	if p.str("status") != "captured" || p.num("amount") != 1500 || p.str("mandate_id") != mdt.str("id") || p.str("agent_id") != w.agent {
		t.Fatalf("recharge payment: %s", p.raw)
	}
	if again := w.ok(201, w.call("POST", "/v1/billing/recharges", w.agentKey, "recharge-1", map[string]any{"provider": w.merch, "amount": 1500,
		"currency": "USD", "mandate_id": mdt.str("id")})); again.str("id") != p.str("id") {
		t.Fatalf("a retried recharge paid again: %s", again.raw)
	}
	if a, r, g := w.creditOf(mk, "", w.agent, "USD"); a != 1500 || r != 0 || g != 1500 {
		t.Fatalf("credit after the recharge: %d %d %d", a, r, g)
	}
	if a, _ := w.balance(w.userKey, "USD"); a != walletBefore-1500 {
		t.Fatalf("wallet after the recharge: %d, want %d", a, walletBefore-1500)
	}
	if a, _ := w.balance(mk, "USD"); a <= merchBefore {
		t.Fatalf("the provider was not paid: %d, before %d", a, merchBefore)
	}
	back := w.ok(200, w.call("POST", "/v1/billing/reservations", mk, "", map[string]any{"customer": w.agent, "amount": 1, "currency": "USD"}))
	if back.body["allowed"] != true {
		t.Fatalf("after the recharge: %s", back.raw)
	}

	// Above the mandate's max_amount: declined, and no credit.
	d := w.call("POST", "/v1/billing/recharges", w.agentKey, "", map[string]any{"provider": w.merch, "amount": 2500, "currency": "USD", "mandate_id": mdt.str("id")})
	if d.status != 402 || d.str("payment_id") == "" && d.errField("payment_id") == "" {
		t.Fatalf("a recharge above the mandate: %d %s", d.status, d.raw)
	}
	// The user recharges its agent; and nobody recharges another's agent.
	w.ok(201, w.call("POST", "/v1/billing/recharges", w.userKey, "", map[string]any{"provider": w.merch, "customer": w.agent, "amount": 500, "currency": "USD"}))
	if a, r, _ := w.creditOf(mk, "", w.agent, "USD"); a != 1999 || r != 1 {
		t.Fatalf("credit after the user's recharge: %d %d; want 1999 and 1 reserved", a, r)
	}
	for _, c := range []struct {
		key         string
		body        map[string]any
		status      int
		code, param string
	}{
		{w.userKey, map[string]any{"provider": w.merch, "customer": "agt_00000000000000000000000000", "amount": 5, "currency": "USD"}, 404, "resource_missing", "customer"},
		{w.userKey, map[string]any{"provider": w.merch, "customer": w.user + "x", "amount": 5, "currency": "USD"}, 400, "parameter_invalid", "customer"},
		{w.userKey, map[string]any{"amount": 5, "currency": "USD"}, 400, "parameter_missing", "provider"},
		{w.userKey, map[string]any{"provider": w.merch, "amount": 0, "currency": "USD"}, 400, "invalid_amount", "amount"},
		{mk, map[string]any{"provider": w.merch, "amount": 5, "currency": "USD"}, 403, "forbidden", ""},
	} {
		r := w.call("POST", "/v1/billing/recharges", c.key, "", c.body)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("recharge %v: %d %s; want %d %s (%s)", c.body, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	if a, _, _ := w.creditOf(mk, "", w.agent, "USD"); a != 1999 {
		t.Fatalf("credit after refused recharges: %d", a)
	}
	w.verify()
}

// TestTokenPayGenericMeters: generic meters read their value from the
// event's data and aggregate it as they say (sum and count are charged;
// max, unique_count and latest are reported), grouped by their paths.
func TestTokenPayGenericMeters(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	meter := func(body map[string]any) string {
		return w.ok(201, w.call("POST", "/v1/billing/meters", mk, "", body)).str("id")
	}
	sum := meter(map[string]any{"event_type": "gpu_seconds", "value_path": "gpu.seconds", "aggregation": "sum", "group_by": []string{"region"}})
	cnt := meter(map[string]any{"event_type": "api_call", "aggregation": "count"})
	maxm := meter(map[string]any{"event_type": "storage_gb", "value_path": "gb", "aggregation": "max"})
	uniq := meter(map[string]any{"event_type": "seat", "value_path": "user", "aggregation": "unique_count"})
	last := meter(map[string]any{"event_type": "plan_tier", "value_path": "tier", "aggregation": "latest"})
	for _, c := range []struct {
		body        map[string]any
		code, param string
	}{
		{map[string]any{"event_type": "gpu_seconds", "value_path": "x", "aggregation": "sum"}, "parameter_invalid", "event_type"},
		{map[string]any{"event_type": "x", "value_path": "v", "aggregation": "avg"}, "parameter_invalid", "aggregation"},
		{map[string]any{"event_type": "y", "aggregation": "sum"}, "parameter_missing", "value_path"},
		{map[string]any{"event_type": "z", "value_path": "v", "aggregation": "count"}, "parameter_invalid", "value_path"},
	} {
		if r := w.call("POST", "/v1/billing/meters", mk, "", c.body); r.status != 400 || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("meter %v: %d %s", c.body, r.status, r.raw)
		}
	}
	if ms := w.ok(200, w.call("GET", "/v1/billing/meters", mk, "", nil)); len(ms.body["data"].([]any)) != 5 {
		t.Fatalf("meters: %s", ms.raw)
	}
	for _, m := range []string{sum, cnt} {
		w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"meter": m, "currency": "USD", "unit_price": "1000000"})) // 1.00 per unit
	}
	for _, m := range []string{maxm, uniq, last} {
		w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"meter": m, "currency": "USD", "unit_price": "0"}))
	}
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 100000, "currency": "USD"}))
	ev := func(id, m string, data map[string]any) map[string]any {
		return map[string]any{"id": id, "customer": w.user, "meter": m, "data": data}
	}
	r := w.events(ev("g1", sum, map[string]any{"gpu": map[string]any{"seconds": 30}, "region": "eu"}),
		ev("g2", sum, map[string]any{"gpu": map[string]any{"seconds": 12}, "region": "us"}),
		ev("g3", sum, map[string]any{"gpu": map[string]any{"seconds": 8}, "region": "eu"}),
		ev("c1", cnt, nil), ev("c2", cnt, map[string]any{"any": "thing"}),
		ev("m1", maxm, map[string]any{"gb": 5}), ev("m2", maxm, map[string]any{"gb": 9}), ev("m3", maxm, map[string]any{"gb": 7}),
		ev("u1", uniq, map[string]any{"user": "ann"}), ev("u2", uniq, map[string]any{"user": "bob"}), ev("u3", uniq, map[string]any{"user": "ann"}),
		ev("l1", last, map[string]any{"tier": 2}), ev("l2", last, map[string]any{"tier": 1}),
		ev("bad1", sum, map[string]any{"gpu": map[string]any{"seconds": -1}}),
		ev("bad2", sum, map[string]any{"gpu": 3}),
		ev("bad3", "mtr_00000000000000000000000000", nil),
		map[string]any{"id": "bad4", "customer": w.user, "meter": sum, "model": "x", "usage": map[string]any{"input": 1}})
	if s := eventStatuses(r); s != strings.Repeat("accepted,", 13)+"refused:parameter_invalid,refused:parameter_missing,refused:resource_missing,refused:parameter_invalid" {
		t.Fatalf("generic events: %s", s)
	}
	// 50 GPU seconds and 2 calls at 1.00 each.
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 100000-5200 {
		t.Fatalf("credit after generic events: %d, want %d", a, 100000-5200)
	}
	u := w.ok(200, w.call("GET", "/v1/billing/customers/"+w.user+"/usage?group_by=region", mk, "", nil))
	got := map[string]string{}
	for _, d := range u.body["data"].([]any) {
		m := d.(map[string]any)
		got[m["meter"].(string)+"/"+m["keys"].(map[string]any)["region"].(string)] = fmt.Sprintf("%v %v %v", m["events"], m["quantity"], m["amount_exact"])
	}
	want := map[string]string{sum + "/eu": "2 38 38.00", sum + "/us": "1 12 12.00", cnt + "/": "2 2 2.00",
		maxm + "/": "3 9 0.00", uniq + "/": "3 2 0.00", last + "/": "2 1 0.00"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("usage:\n got %v\nwant %v", got, want)
	}
	w.verify()
}

// TestCLIBilling: the provider prices a model, grants credit, reports
// usage from a file and reads the balance, usage and invoice with
// `paybound billing`; a bad flag is a coded error and changes nothing.
func TestCLIBilling(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	mk := w.merchKey
	run := func(key string, args ...string) string {
		t.Helper()
		out, errOut, err := w.cli(key, args...)
		if err != nil {
			t.Fatalf("paybound %v: %v\n%s%s", args, err, out, errOut)
		}
		return out
	}
	if out := run(mk, "billing", "price", "--model", "gpt-x*", "--unit-price", "2.50", "--currency", "usd", "--effective-from", "2020-01-01T00:00:00Z"); !strings.Contains(out, "v1: 2.50 USD per 1M all tokens of gpt-x*") {
		t.Fatalf("price: %s", out)
	}
	if out := run(mk, "billing", "grant", w.user, "--amount", "10.00", "--currency", "USD", "--category", "promotional"); !strings.Contains(out, "10.00 USD of promotional credit for "+w.user) {
		t.Fatalf("grant: %s", out)
	}
	file := filepath.Join(t.TempDir(), "events.json")
	os.WriteFile(file, []byte(`[{"id":"r1","customer":"`+w.user+`","model":"gpt-x-1","usage":{"input":2000000,"output":1000000}},
		{"id":"r1","customer":"`+w.user+`","model":"gpt-x-1","usage":{"input":1}},{"id":"r2","customer":"`+w.user+`","model":"nope","usage":{"input":1}}]`), 0o600)
	if out := run(mk, "billing", "events", file); !strings.Contains(out, "1 accepted, 1 duplicates, 1 refused") || !strings.Contains(out, "r2:") {
		t.Fatalf("events: %s", out)
	}
	if out := run(mk, "billing", "balance", w.user); !strings.Contains(out, "USD       2.50       0.00      2.50") {
		t.Fatalf("balance: %s", out)
	}
	if out := run(w.userKey, "billing", "balance", "me", "--provider", w.merch); !strings.Contains(out, "2.50") {
		t.Fatalf("the customer's own balance: %s", out)
	}
	if out := run(mk, "billing", "usage", w.user); !strings.Contains(out, "gpt-x-1/input") || !strings.Contains(out, "5.00 USD") {
		t.Fatalf("usage: %s", out)
	}
	period := time.Now().UTC().Format("2006-01")
	if out := run(mk, "billing", "invoice", w.user, "--period", period, "--currency", "USD"); !strings.Contains(out, "usage 7.50 USD, credits applied 7.50 USD, due 0.00 USD") {
		t.Fatalf("invoice: %s", out)
	}
	if out := run(mk, "billing", "invoice", w.user, "--period", period, "--currency", "USD", "--csv"); !strings.HasPrefix(out, "invoice,period,customer") {
		t.Fatalf("invoice csv: %s", out)
	}
	if _, errOut, err := w.cli(mk, "billing", "price", "--model", "m", "--unit-price", "1.0000000001", "--currency", "USD"); err == nil || !strings.Contains(errOut, "parameter_invalid") {
		t.Fatalf("a bad price: %v %s", err, errOut)
	}
	for _, bad := range []string{"1000:2.50,1.25", "x:2.50,:1.25", "1000:2.50"} {
		if _, errOut, err := w.cli(mk, "billing", "price", "--model", "g", "--tiers", bad, "--currency", "USD"); err == nil || errOut == "" {
			t.Fatalf("bad tiers %s: %v %s", bad, err, errOut)
		}
	}
	if ps := w.ok(200, w.call("GET", "/v1/billing/prices", mk, "", nil)); len(ps.body["data"].([]any)) != 1 {
		t.Fatalf("prices after the bad ones: %s", ps.raw)
	}
	if out := run(mk, "billing", "price", "--model", "g", "--tiers", "1000000:2.50,:1.25", "--currency", "USD"); !strings.Contains(out, "tier 1, up to 1000000: 2.50 USD per 1M") ||
		!strings.Contains(out, "tier 2, on: 1.25 USD per 1M") {
		t.Fatalf("a graduated price: %s", out)
	}
}

// TestTokenPayAutoRecharge: a customer's credit crossing below its
// threshold is recharged to the target by a real payment from its wallet,
// once per crossing, within the monthly cap; a crossing past the cap
// records why it was not paid.
func TestTokenPayAutoRecharge(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	mk := w.merchKey
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "m", "currency": "USD", "unit_price": "10000"})) // a cent a token
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 300, "currency": "USD", "category": "promotional"}))
	for _, c := range []struct {
		body        map[string]any
		code, param string
	}{
		{map[string]any{"provider": w.merch, "currency": "USD", "threshold": 500, "target": 500, "monthly_cap": 1000}, "parameter_invalid", "threshold"},
		{map[string]any{"provider": w.merch, "currency": "USD", "threshold": 100, "target": 500, "monthly_cap": 100}, "parameter_invalid", "monthly_cap"},
		{map[string]any{"provider": w.merch, "currency": "USD", "threshold": 100}, "parameter_missing", "target"},
	} {
		if r := w.call("POST", "/v1/billing/auto_recharge", w.userKey, "", c.body); r.status != 400 || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("auto-recharge %v: %d %s", c.body, r.status, r.raw)
		}
	}
	w.ok(200, w.call("POST", "/v1/billing/auto_recharge", w.userKey, "", map[string]any{"provider": w.merch, "currency": "USD",
		"threshold": 100, "target": 500, "monthly_cap": 1000}))
	wallet0, _ := w.balance(w.userKey, "USD")
	n := 0
	use := func(tokens int) {
		n++
		w.events(map[string]any{"id": fmt.Sprintf("use-%d", n), "customer": w.user, "model": "m", "usage": map[string]any{"output": tokens}})
	}
	waitCredit := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, _, _ := w.creditOf(mk, "", w.user, "USD")
			if a == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("credit %d, want %d", a, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	state := func() resp {
		return w.ok(200, w.call("GET", "/v1/billing/customers/me/auto_recharge?currency=USD&provider="+w.merch, w.userKey, "", nil))
	}
	use(250) // 300 → 50: the first crossing, recharged by 450 to 500
	waitCredit(500)
	use(100) // 400: above the threshold, no crossing
	use(350) // 50: the second crossing
	waitCredit(500)
	use(450) // 50: the third, with 100 left of the cap
	waitCredit(150)
	use(60) // 90: the fourth, past the cap
	deadline := time.Now().Add(10 * time.Second)
	for state().num("paid") != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the fourth crossing was never settled: %s", state().raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a sweep or two more: nothing is paid again
	s := state()
	if s.num("crossings") != 4 || s.num("spent") != 1000 || !strings.Contains(s.str("last_error"), "monthly cap") {
		t.Fatalf("auto-recharge after four crossings: %s", s.raw)
	}
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 90 {
		t.Fatalf("credit at the end: %d, want 90", a)
	}
	if a, _ := w.balance(w.userKey, "USD"); a != wallet0-1000 {
		t.Fatalf("wallet: %d, want %d (three recharges of 4.50, 4.50 and 1.00)", a, wallet0-1000)
	}
	ps := w.ok(200, w.call("GET", "/v1/payments?limit=100", w.userKey, "", nil))
	recharges := 0
	for _, p := range ps.body["data"].([]any) {
		if strings.HasPrefix(p.(map[string]any)["description"].(string), "Token Pay credit") {
			recharges++
		}
	}
	if recharges != 3 {
		t.Fatalf("%d recharge payments, want 3: %s", recharges, ps.raw)
	}
	w.verify()
}

// TestTokenPayRechargeAfterConfirmation: an agent's recharge outside any
// mandate waits for its user's confirmation and grants no credit; once
// the user approves it and it is captured, the credit is granted, once.
func TestTokenPayRechargeAfterConfirmation(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 40, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	e := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "", nil))
	secret, _ := stepup.DecodeTOTPSecret(e.str("secret"))
	w.ok(200, w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": stepup.TOTPCode(secret, clock.Now().Add(-stepup.TOTPStep))}))
	p := w.ok(201, w.call("POST", "/v1/billing/recharges", w.agentKey, "", map[string]any{"provider": w.merch, "amount": 700, "currency": "USD"}))
	if p.str("status") != "requires_confirmation" {
		t.Fatalf("an agent's recharge without a mandate: %s", p.raw)
	}
	if a, _, g := w.creditOf(w.merchKey, "", w.agent, "USD"); a != 0 || g != 0 {
		t.Fatalf("credit before the approval: %d %d", a, g)
	}
	cfm := p.body["confirmation"].(map[string]any)["id"].(string)
	w.ok(200, w.call("POST", "/v1/confirmations/"+cfm+"/approve", w.userKey, "", map[string]any{"totp": stepup.TOTPCode(secret, clock.Now())}))
	if r := w.ok(200, w.call("GET", "/v1/payments/"+p.str("id"), w.agentKey, "", nil)); r.str("status") != "captured" {
		t.Fatalf("the approved recharge: %s", r.raw)
	}
	if a, _, g := w.creditOf(w.merchKey, "", w.agent, "USD"); a != 700 || g != 700 {
		t.Fatalf("credit after the approval: available %d, granted %d; want 700", a, g)
	}
	if gs := w.grantsOf(w.agent); len(gs) != 1 {
		t.Fatalf("grants after the approval: %v; want one", gs)
	}
	w.verify()
}

// TestTokenPayPlans: a user subscribes to a plan with a real payment and
// gets its included credit; at the month's end the sweep renews it with
// one payment, rolls over what its rollover allows and withdraws the
// rest; a canceled subscription is not renewed; bad plans are refused.
func TestTokenPayPlans(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "m", "currency": "USD", "unit_price": "10000"}))
	for _, c := range []struct {
		body        map[string]any
		code, param string
	}{
		{map[string]any{"name": "Pro", "currency": "USD", "recurring_fee": -1}, "parameter_invalid", "recurring_fee"},
		{map[string]any{"name": "Pro", "currency": "USD", "included_credit": 100, "rollover_max": 200, "rollover_days": 30}, "parameter_invalid", "rollover_max"},
		{map[string]any{"name": "Pro", "currency": "USD", "included_credit": 100, "rollover_max": 50}, "parameter_invalid", "rollover_days"},
		{map[string]any{"name": "", "currency": "USD"}, "parameter_invalid", "name"},
	} {
		if r := w.call("POST", "/v1/billing/plans", mk, "", c.body); r.status != 400 || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("plan %v: %d %s", c.body, r.status, r.raw)
		}
	}
	plan := w.ok(201, w.call("POST", "/v1/billing/plans", mk, "", map[string]any{"name": "Pro", "currency": "USD", "recurring_fee": 1000,
		"included_credit": 500, "rollover_max": 200, "rollover_days": 30}))
	if ps := w.ok(200, w.call("GET", "/v1/billing/plans?provider="+w.merch, w.userKey, "", nil)); len(ps.body["data"].([]any)) != 1 {
		t.Fatalf("plans: %s", ps.raw)
	}
	wallet0, _ := w.balance(w.userKey, "USD")
	p := w.ok(201, w.call("POST", "/v1/billing/subscriptions", w.userKey, "", map[string]any{"provider": w.merch, "plan": plan.str("id")}))
	if p.str("status") != "captured" || p.num("amount") != 1000 {
		t.Fatalf("the first month's payment: %s", p.raw)
	}
	subs := func() map[string]any {
		t.Helper()
		r := w.ok(200, w.call("GET", "/v1/billing/customers/"+w.user+"/subscriptions", mk, "", nil))
		d := r.body["data"].([]any)
		if len(d) != 1 {
			t.Fatalf("subscriptions: %s", r.raw)
		}
		return d[0].(map[string]any)
	}
	if s := subs(); s["status"] != "active" || s["period"].(float64) != 1 {
		t.Fatalf("subscription: %v", s)
	}
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 500 {
		t.Fatalf("included credit: %d", a)
	}
	w.events(map[string]any{"id": "u1", "customer": w.user, "model": "m", "usage": map[string]any{"output": 100}}) // 400 left
	clock.Advance(31 * 24 * time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for subs()["period"].(float64) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not renewed: %v", subs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// 200 of the 400 left roll over; the new month's 500 are granted.
	if a, _, g := w.creditOf(mk, "", w.user, "USD"); a != 700 || g != 700 {
		t.Fatalf("credit after the renewal: %d %d, want 700", a, g)
	}
	sub := subs()
	inv := w.ok(200, w.call("POST", "/v1/billing/invoices", mk, "", map[string]any{"customer": w.user, "period": "2026-11", "currency": "USD"}))
	fees := inv.body["fees"].([]any)
	if inv.num("recurring_fee") != 1000 || len(fees) != 1 || fees[0].(map[string]any)["payment_id"] != p.str("id") || inv.num("usage") != 100 || inv.num("amount_due") != 0 {
		t.Fatalf("November's invoice: %s", inv.raw)
	}
	w.ok(200, w.call("POST", "/v1/billing/subscriptions/"+sub["id"].(string)+"/cancel", w.userKey, "", nil))
	if r := w.call("POST", "/v1/billing/subscriptions/"+sub["id"].(string)+"/cancel", w.userKey, "", nil); r.status != 409 {
		t.Fatalf("canceling twice: %d %s", r.status, r.raw)
	}
	clock.Advance(31 * 24 * time.Hour)
	time.Sleep(1500 * time.Millisecond) // a sweep or two: no renewal
	if s := subs(); s["status"] != "canceled" || s["period"].(float64) != 2 {
		t.Fatalf("a canceled subscription: %v", s)
	}
	if a, _ := w.balance(w.userKey, "USD"); a != wallet0-2000 {
		t.Fatalf("wallet: %d, want two months' fees paid (%d)", a, wallet0-2000)
	}
	w.verify()
}

// TestTokenPayConcurrentUsageKeepsGrants: 400 usage events of one cent for
// one customer, sent 64 at a time, draw exactly 4.00 from its grants, and
// what the grants say remains equals the credit the ledger holds. The
// writer applies a batch while the one before commits; a grant read from
// the store then would miss that batch's draw and write over it.
func TestTokenPayConcurrentUsageKeepsGrants(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	w.ok(201, w.call("POST", "/v1/billing/prices", w.merchKey, "", map[string]any{"model": "m", "token_type": "input", "currency": "USD", "unit_price": "10000"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 700, "currency": "USD", "category": "paid"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 300, "currency": "USD", "category": "promotional"}))
	const n = 400
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := w.call("POST", "/v1/billing/events", w.merchKey, "", map[string]any{"events": []map[string]any{
				{"id": fmt.Sprintf("ev-%d", i), "customer": w.user, "model": "m", "usage": map[string]any{"input": 1}}}})
			if r.status != 200 || eventStatuses(r) != "accepted" {
				t.Errorf("event %d: %d %s", i, r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	a, res, _ := w.creditOf(w.merchKey, "", w.user, "USD")
	var remaining int64
	for _, v := range w.grantsOf(w.user) {
		remaining += v
	}
	if a != 1000-n || res != 0 || remaining != a {
		t.Fatalf("after %d events of one cent on 10.00: the ledger holds %d available (%d reserved); the grants say %d remain", n, a, res, remaining)
	}
	w.verify()
}

// TestTokenPayUsageCountsEvents: a usage group's events count usage
// events, not their lines: an event of input and output tokens is one
// event in its group, and one in each token type's group when grouped by
// token type; a duplicate counts nothing.
func TestTokenPayUsageCountsEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	w.ok(201, w.call("POST", "/v1/billing/prices", w.merchKey, "", map[string]any{"model": "m", "currency": "USD", "unit_price": "1"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 100000, "currency": "USD"}))
	ev := func(id string, usage map[string]any) map[string]any {
		return map[string]any{"id": id, "customer": w.user, "model": "m", "usage": usage}
	}
	r := w.events(ev("u1", map[string]any{"input": 1000, "output": 200}), ev("u2", map[string]any{"input": 50}),
		ev("u3", map[string]any{"input": 7, "output": 3, "reasoning": 1}), ev("u1", map[string]any{"input": 1000, "output": 200}))
	if eventStatuses(r) != "accepted,accepted,accepted,duplicate" {
		t.Fatalf("events: %s", r.raw)
	}
	usage := func(groupBy string) map[string]string {
		t.Helper()
		q := "/v1/billing/customers/" + w.user + "/usage?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"
		if groupBy != "" {
			q += "&group_by=" + groupBy
		}
		u := w.ok(200, w.call("GET", q, w.merchKey, "", nil))
		out := map[string]string{}
		for _, d := range u.body["data"].([]any) {
			g := d.(map[string]any)
			out[fmt.Sprint(g["keys"])] = fmt.Sprintf("%v events, %v tokens", g["events"], g["quantity"])
		}
		return out
	}
	if got := usage(""); fmt.Sprint(got) != "map[map[]:3 events, 1261 tokens]" {
		t.Fatalf("usage: %v; want 3 events of 1,261 tokens", got)
	}
	want := "map[map[token_type:input]:3 events, 1057 tokens map[token_type:output]:2 events, 203 tokens map[token_type:reasoning]:1 events, 1 tokens]"
	if got := usage("token_type"); fmt.Sprint(got) != want {
		t.Fatalf("usage by token type: %v; want %s", got, want)
	}
}
