package main

import (
	"fmt"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/paybound/paybound/internal/billing"
)

// TestTokenPayInvoiceProperty: for random histories of usage events
// (random models, token types, quantities and times in the period, a
// price version change in the middle, duplicate IDs), the invoice the
// server stores equals one recomputed here from the raw events: its lines
// (quantity and exact amount per price version, model and token type),
// and its totals, which equal what the ledger moved from the customer's
// credit: the exact total rounded down once.
func TestTokenPayInvoiceProperty(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	change := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	type priceKey struct{ model, tokenType string }
	type version struct {
		id    string
		nanos int64
		from  time.Time
	}
	prices := map[priceKey][]version{}
	models, types := []string{"m-a", "m-b"}, []string{"input", "cached_input", "output", "reasoning"}
	// m-t has a graduated price, for every token type: a customer's first
	// 2M tokens of the month at 3.000000001, the next 4M at 1.5, the rest
	// at 0.25 (per 1M).
	type tier struct {
		upTo  int64 // 0: no end
		nanos int64
	}
	tiers := []tier{{2_000_000, 3_000_000_001}, {6_000_000, 1_500_000_000}, {0, 250_000_000}}
	tp := w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "m-t", "currency": "USD", "effective_from": start.Add(-time.Hour).Format(time.RFC3339),
		"tiers": []any{map[string]any{"up_to": 2_000_000, "unit_price": "3.000000001"}, map[string]any{"up_to": 6_000_000, "unit_price": "1.5"},
			map[string]any{"up_to": nil, "unit_price": "0.25"}}}))
	if tp.str("unit_price") != "3.000000001" || len(tp.body["tiers"].([]any)) != 3 {
		t.Fatalf("a graduated price: %s", tp.raw)
	}
	for _, m := range models {
		for i, tt := range types {
			for j, from := range []time.Time{start.Add(-24 * time.Hour), change} {
				unit := fmt.Sprintf("%d.%09d", i+j+1, 123456789*(j+1)%1000000000) // 9 decimal places
				p := w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": m, "token_type": tt, "currency": "USD",
					"unit_price": unit, "effective_from": from.Format(time.RFC3339)}))
				prices[priceKey{m, tt}] = append(prices[priceKey{m, tt}], version{p.str("id"), p.num("unit_price_nanos"), from})
			}
		}
	}
	models = append(models, "m-t")
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": fmt.Sprintf("c%d", n)}))
		cust := u.str("id")
		const granted = 1_000_000_000
		w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": cust, "amount": granted, "currency": "USD"}))
		want := map[string]*big.Int{} // price|model|type -> exact femtos
		qty := map[string]int64{}
		seen := map[string]bool{}
		total := new(big.Int)
		used := int64(0) // the customer's m-t tokens this month, in arrival order
		var batch []map[string]any
		flush := func() {
			if len(batch) > 0 {
				if r := w.events(batch...); r.num("refused") > 0 {
					rt.Fatalf("refused: %s", r.raw)
				}
				batch = nil
			}
		}
		for i := range rapid.IntRange(1, 30).Draw(rt, "events") {
			id := fmt.Sprintf("%s-e%d", cust, rapid.IntRange(0, 20).Draw(rt, fmt.Sprint("id", i)))
			model := rapid.SampledFrom(models).Draw(rt, "model")
			at := start.Add(time.Duration(rapid.Int64Range(0, int64(clock.Now().Sub(start)/time.Second)).Draw(rt, "at")) * time.Second)
			usage := map[string]any{}
			for _, tt := range types {
				if rapid.Bool().Draw(rt, "has "+tt) {
					usage[tt] = rapid.Int64Range(0, 3_000_000).Draw(rt, tt)
				}
			}
			if len(usage) == 0 {
				usage["output"] = int64(1)
			}
			batch = append(batch, map[string]any{"id": id, "customer": cust, "model": model, "timestamp": at.Format(time.RFC3339), "usage": usage})
			if rapid.IntRange(0, 3).Draw(rt, "flush") == 0 {
				flush()
			}
			if seen[id] {
				continue // a duplicate: never charged
			}
			seen[id] = true
			if model == "m-t" {
				for _, tt := range types { // the token types in the order an event's lines are
					q, ok := usage[tt].(int64)
					if !ok {
						continue
					}
					if k := fmt.Sprintf("%s|m-t|%s|1", tp.str("id"), tt); q == 0 && want[k] == nil {
						want[k] = new(big.Int) // reported, if of no tokens
					}
					for i, lo := 0, int64(0); i < len(tiers); i++ {
						hi := tiers[i].upTo
						if hi == 0 {
							hi = 1 << 62
						}
						if in := min(used+q, hi) - max(used, lo); in > 0 {
							k := fmt.Sprintf("%s|m-t|%s|%d", tp.str("id"), tt, i+1)
							if want[k] == nil {
								want[k] = new(big.Int)
							}
							c := new(big.Int).Mul(big.NewInt(in), big.NewInt(tiers[i].nanos))
							want[k].Add(want[k], c)
							qty[k] += in
							total.Add(total, c)
						}
						lo = hi
					}
					used += q
				}
				continue
			}
			for tt, q := range usage {
				vs := prices[priceKey{model, tt}]
				v := vs[0]
				if !at.Before(vs[1].from) {
					v = vs[1]
				}
				k := v.id + "|" + model + "|" + tt
				if want[k] == nil {
					want[k] = new(big.Int)
				}
				c := new(big.Int).Mul(big.NewInt(q.(int64)), big.NewInt(v.nanos))
				want[k].Add(want[k], c)
				qty[k] += q.(int64)
				total.Add(total, c)
			}
		}
		flush()
		inv := w.ok(200, w.call("POST", "/v1/billing/invoices", mk, "", map[string]any{"customer": cust, "period": "2026-11", "currency": "USD"}))
		again := w.ok(200, w.call("POST", "/v1/billing/invoices", mk, "", map[string]any{"customer": cust, "period": "2026-11", "currency": "USD"}))
		stored := w.ok(200, w.call("GET", "/v1/billing/invoices/"+inv.str("id"), mk, "", nil))
		if again.str("id") != inv.str("id") || string(stored.raw) != string(inv.raw) {
			rt.Fatalf("the invoice computed again differs:\n%s\n%s", inv.raw, stored.raw)
		}
		got := map[string]string{}
		for _, l := range inv.body["lines"].([]any) {
			m := l.(map[string]any)
			k := m["price_id"].(string) + "|" + m["model"].(string) + "|" + m["token_type"].(string)
			if tier, ok := m["tier"].(float64); ok {
				k += fmt.Sprintf("|%d", int(tier))
			}
			got[k] = fmt.Sprintf("%v %s", m["quantity"], m["amount_exact"])
		}
		exp := map[string]string{}
		for k, v := range want {
			exp[k] = fmt.Sprintf("%v %s", float64(qty[k]), billing.FormatFemtos(v))
		}
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(exp)) {
			us := w.call("GET", "/v1/billing/customers/"+cust+"/usage", mk, "", nil)
			rt.Fatalf("invoice lines:\n got %v\nwant %v\n%s\n%s", sorted(got), sorted(exp), inv.raw, us.raw)
		}
		minor := new(big.Int).Quo(total, big.NewInt(10_000_000_000_000)).Int64() // USD: 10^13 femtos a cent
		a, r, g := w.creditOf(mk, "", cust, "USD")
		if inv.num("usage") != minor || inv.num("credits_applied") != minor || inv.num("amount_due") != 0 || g != granted-minor || a != g || r != 0 {
			rt.Fatalf("totals: usage %d, credits_applied %d, due %d; credit moved %d; want %d", inv.num("usage"), inv.num("credits_applied"), inv.num("amount_due"), granted-g, minor)
		}
	})
	w.verify()
}

func sorted(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// TestTokenPayInvoiceFinalize: a draft can't be finalized before its
// period and grace are over; finalized, it no longer changes; it reads as
// JSON and CSV, to its provider and its customer only.
func TestTokenPayInvoiceFinalize(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "m", "currency": "USD", "unit_price": "2.5",
		"effective_from": "2026-11-01T00:00:00Z"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 100, "currency": "USD"}))
	w.events(map[string]any{"id": "a", "customer": w.user, "model": "m", "usage": map[string]any{"input": 3_000_000, "output": 40_000_000}})
	body := map[string]any{"customer": w.user, "period": "2026-11", "currency": "USD"}
	inv := w.ok(200, w.call("POST", "/v1/billing/invoices", mk, "", body))
	// 43M tokens at 2.50 per 1M: 107.50, of which the credit paid 1.00.
	if inv.str("status") != "draft" || inv.num("usage") != 10750 || inv.num("credits_applied") != 100 || inv.num("amount_due") != 10650 {
		t.Fatalf("draft: %s", inv.raw)
	}
	id := inv.str("id")
	if r := w.call("POST", "/v1/billing/invoices/"+id+"/finalize", mk, "", nil); r.status != 409 || r.errField("code") != "billing_invoice_state" {
		t.Fatalf("finalizing during the period: %d %s", r.status, r.raw)
	}
	for _, c := range []struct {
		body        map[string]any
		code, param string
	}{
		{map[string]any{"customer": w.user, "period": "2026-13", "currency": "USD"}, "parameter_invalid", "period"},
		{map[string]any{"customer": w.user, "period": "2027-01", "currency": "USD"}, "parameter_invalid", "period"},
		{map[string]any{"customer": w.user, "currency": "USD"}, "parameter_missing", "period"},
		{map[string]any{"customer": w.user, "period": "2026-11", "currency": "usd"}, "invalid_currency", "currency"},
	} {
		if r := w.call("POST", "/v1/billing/invoices", mk, "", c.body); r.status != 400 || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("invoice %v: %d %s", c.body, r.status, r.raw)
		}
	}
	clock.Advance(14*24*time.Hour + 1) // past December 3, 12:00
	fin := w.ok(200, w.call("POST", "/v1/billing/invoices/"+id+"/finalize", mk, "", nil))
	if fin.str("status") != "finalized" || fin.str("finalized_at") == "" || fin.num("usage") != 10750 {
		t.Fatalf("finalized: %s", fin.raw)
	}
	if again := w.ok(200, w.call("POST", "/v1/billing/invoices", mk, "", body)); again.str("id") != id || again.str("status") != "finalized" {
		t.Fatalf("asking again for a finalized invoice: %s", again.raw)
	}
	if r := w.call("POST", "/v1/billing/invoices/"+id+"/finalize", mk, "", nil); r.status != 409 {
		t.Fatalf("finalizing twice: %d %s", r.status, r.raw)
	}
	csv := w.ok(200, w.call("GET", "/v1/billing/invoices/"+id+"?format=csv", mk, "", nil))
	lines := strings.Split(strings.TrimSpace(string(csv.raw)), "\n")
	if csv.header.Get("Content-Type") != "text/csv; charset=utf-8" || len(lines) != 8 || !strings.HasPrefix(lines[0], "invoice,period,customer") ||
		!strings.HasSuffix(lines[1], ",3000000,7.50,750") || !strings.HasSuffix(lines[5], ",overdraft,,,,,,,,,0") || !strings.HasSuffix(lines[6], ",amount_due,,,,,,,,,10650") {
		t.Fatalf("csv:\n%s", csv.raw)
	}
	if r := w.call("GET", "/v1/billing/invoices/"+id, w.userKey, "", nil); r.status != 200 || r.str("id") != id {
		t.Fatalf("the customer reads its invoice: %d %s", r.status, r.raw)
	}
	for _, key := range []string{w.merch2Key, w.agentKey} {
		if r := w.call("GET", "/v1/billing/invoices/"+id, key, "", nil); r.status != 404 {
			t.Fatalf("another reads the invoice: %d %s", r.status, r.raw)
		}
	}
	w.verify()
}
