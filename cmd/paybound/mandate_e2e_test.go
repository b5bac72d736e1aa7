package main

import (
	"fmt"
	"sync"
	"testing"
)

// TestMandatesOverHTTP drives mandates through the real server: grant, pay
// under it, decline with a precise code, view usage, revoke.
func TestMandatesOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	grant := map[string]any{"agent_id": w.agent, "description": "coffee on weekdays, at most 5 dollars",
		"currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000, "period": "week"},
		"merchant_ids": []string{w.merch}, "condition": `payment.amount >= 100`}
	m := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", grant))
	id := m.str("id")
	if m.str("object") != "mandate" || m.num("remaining_budget") != 1000 || m.str("description") != grant["description"] {
		t.Fatalf("mandate: %s", m.raw)
	}
	pay := func(amount int, merchant, mandate string) resp {
		return w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": amount, "currency": "USD",
			"merchant_id": merchant, "mandate_id": mandate, "capture_method": "manual"})
	}
	p := w.ok(201, pay(450, w.merch, id))
	if p.str("mandate_id") != id || p.str("agent_id") != w.agent {
		t.Fatalf("payment under the mandate: %s", p.raw)
	}
	for _, c := range []struct {
		amount         int
		merchant, code string
	}{
		{501, w.merch, "mandate_amount_exceeded"},
		{450, w.merch2, "mandate_merchant_not_allowed"},
		{50, w.merch, "mandate_condition_failed"},
		{450, w.merch, ""},
		{450, w.merch, "mandate_budget_exhausted"},
	} {
		r := pay(c.amount, c.merchant, id)
		if c.code == "" {
			w.ok(201, r)
			continue
		}
		if r.status != 402 || r.errField("code") != c.code || r.errField("payment_id") == "" {
			t.Fatalf("%d to %s: %d %s; want 402 %s", c.amount, c.merchant, r.status, r.raw, c.code)
		}
	}
	v := w.ok(200, w.call("GET", "/v1/mandates/"+id, w.agentKey, "", nil))
	if v.num("remaining_budget") != 100 || v.num("payments_count") != 2 {
		t.Fatalf("usage: %s", v.raw)
	}
	l := w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil))
	if len(l.body["data"].([]any)) != 1 {
		t.Fatalf("list: %s", l.raw)
	}
	// Canceling a payment gives its budget back.
	w.ok(200, w.call("POST", "/v1/payments/"+p.str("id")+"/cancel", w.merchKey, "", nil))
	if v := w.ok(200, w.call("GET", "/v1/mandates/"+id, w.userKey, "", nil)); v.num("remaining_budget") != 550 {
		t.Fatalf("after cancel: %s", v.raw)
	}
	w.ok(200, w.call("POST", "/v1/mandates/"+id+"/revoke", w.userKey, "", nil))
	if r := pay(100, w.merch, id); r.status != 402 || r.errField("code") != "mandate_revoked" {
		t.Fatalf("after revoke: %d %s", r.status, r.raw)
	}
	// Bad requests change nothing.
	for _, c := range []struct {
		body        map[string]any
		key         string
		status      int
		code, param string
	}{
		{map[string]any{"description": "x", "currency": "USD", "max_amount": 1, "budget": map[string]any{"amount": 1}}, w.userKey, 400, "parameter_missing", "agent_id"},
		{map[string]any{"agent_id": w.agent, "description": "x", "currency": "USD", "budget": map[string]any{"amount": 1}}, w.userKey, 400, "parameter_missing", "max_amount"},
		{map[string]any{"agent_id": w.agent, "description": "x", "currency": "USD", "max_amount": 1}, w.userKey, 400, "parameter_missing", "budget.amount"},
		{map[string]any{"agent_id": w.agent, "description": "", "currency": "USD", "max_amount": 1, "budget": map[string]any{"amount": 1}}, w.userKey, 400, "parameter_missing", "description"},
		{map[string]any{"agent_id": "agt_00000000000000000000000000", "description": "x", "currency": "USD", "max_amount": 1, "budget": map[string]any{"amount": 1}}, w.userKey, 400, "parameter_invalid", "agent_id"},
		{map[string]any{"agent_id": w.agent, "description": "x", "currency": "USD", "max_amount": 1, "budget": map[string]any{"amount": 1}, "condition": "payment.amont > 1"}, w.userKey, 400, "parameter_invalid", "condition"},
		{map[string]any{"agent_id": w.agent, "description": "x", "currency": "USD", "max_amount": 1, "budget": map[string]any{"amount": 1}, "expires_at": "soon"}, w.userKey, 400, "parameter_invalid", "expires_at"},
		{map[string]any{"agent_id": w.agent, "description": "x", "currency": "USD", "max_amount": 1, "budget": map[string]any{"amount": 1}, "schedule": map[string]any{"days": []string{"mon"}, "start": "09:00", "end": "17:00", "time_zone": "Nowhere/City"}}, w.userKey, 400, "parameter_invalid", "schedule.time_zone"},
		{map[string]any{"agent_id": w.agent, "description": "x", "currency": "USD", "max_amount": 1, "budget": map[string]any{"amount": 1}}, w.agentKey, 403, "forbidden", ""},
	} {
		r := w.call("POST", "/v1/mandates", c.key, "", c.body)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("%v: %d %s; want %d %s %s", c.body, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	if l := w.ok(200, w.call("GET", "/v1/mandates", w.userKey, "", nil)); len(l.body["data"].([]any)) != 1 {
		t.Fatalf("bad requests created mandates: %s", l.raw)
	}
	if r := w.call("GET", "/v1/mandates/"+id, w.merchKey, "", nil); r.status != 404 {
		t.Fatalf("a merchant sees a mandate: %d", r.status)
	}
	w.verify()
}

// hammerMandate sends 100 concurrent agent payments of 1.00 against a
// mandate budget of 10.00 through apis, and checks exactly 10 get through.
func hammerMandate(t *testing.T, apis []*api, userKey, agent, agentKey, merchant string) {
	a := apis[0]
	m := a.ok(201, a.call("POST", "/v1/mandates", userKey, "", map[string]any{"agent_id": agent, "description": "ten dollars in all",
		"currency": "USD", "max_amount": 100, "budget": map[string]any{"amount": 1000, "period": "total"}}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[string]int{}
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := apis[i%len(apis)].call("POST", "/v1/payments", agentKey, fmt.Sprintf("budget-%d", i),
				map[string]any{"amount": 100, "currency": "USD", "merchant_id": merchant, "mandate_id": m.str("id")})
			mu.Lock()
			out[paymentOutcome(r)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if out["201 captured"] != 10 || out["402 declined mandate_budget_exhausted"] != 90 || len(out) != 2 {
		t.Fatalf("outcomes %v; want 10 payments and 90 mandate_budget_exhausted", out)
	}
	if v := a.ok(200, a.call("GET", "/v1/mandates/"+m.str("id"), userKey, "", nil)); v.num("remaining_budget") != 0 || v.num("payments_count") != 10 {
		t.Fatalf("mandate after the hammer: %s", v.raw)
	}
}

func TestMandateBudgetOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(m *Main) { m.Config.RiskConfig = loadRisk(t, m.Config.DataDir) })
	hammerMandate(t, []*api{w.api}, w.userKey, w.agent, w.agentKey, w.merch)
	w.verify()
}
