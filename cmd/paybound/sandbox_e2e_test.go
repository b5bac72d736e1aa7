package main

import (
	"log/slog"
	"strings"
	"testing"
)

// TestSandboxOff: without --sandbox a user cannot top up (403
// sandbox_off, nothing changes); the operator funds wallets, within a
// bound, naming where the money came from, and each funding is logged;
// bad fundings are refused and change nothing.
func TestSandboxOff(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	m := startMain(t, t.TempDir(), func(m *Main) {
		m.Config.Sandbox = false
		m.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	w := &world{api: &api{t: t, base: m.URL()}, m: m, op: m.OperatorKey}
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Ada"}))
	user, key := u.str("id"), u.str("api_key")
	if r := w.call("POST", "/v1/topups", key, "", map[string]any{"amount": 5000, "currency": "USD"}); r.status != 403 || r.errField("code") != "sandbox_off" {
		t.Fatalf("a top-up without the sandbox: %d %s", r.status, r.raw)
	}
	if av, _ := w.balance(key, "USD"); av != 0 {
		t.Fatalf("the refused top-up changed the wallet: %d", av)
	}
	fund := func(k, id string, body map[string]any) resp {
		return w.call("POST", "/v1/users/"+id+"/fundings", k, "", body)
	}
	for _, c := range []struct {
		key, id string
		body    map[string]any
		status  int
		code    string
	}{
		{key, user, map[string]any{"amount": 5000, "currency": "USD", "reference": "wire-1"}, 403, "forbidden"},
		{w.op, user, map[string]any{"amount": 5000, "currency": "USD"}, 400, "parameter_invalid"},
		{w.op, user, map[string]any{"amount": 5000, "currency": "USD", "reference": strings.Repeat("x", 201)}, 400, "parameter_invalid"},
		{w.op, user, map[string]any{"amount": 5000, "currency": "USD", "reference": "line\nbreak"}, 400, "parameter_invalid"},
		{w.op, user, map[string]any{"amount": 100_000_001, "currency": "USD", "reference": "wire-1"}, 400, "amount_too_large"},
		{w.op, user, map[string]any{"amount": 0, "currency": "USD", "reference": "wire-1"}, 400, "invalid_amount"},
		{w.op, user, map[string]any{"amount": 5000, "currency": "XXX", "reference": "wire-1"}, 400, "invalid_currency"},
		{w.op, "usr_00000000000000000000000000", map[string]any{"amount": 5000, "currency": "USD", "reference": "wire-1"}, 404, "resource_missing"},
	} {
		if r := fund(c.key, c.id, c.body); r.status != c.status || r.errField("code") != c.code {
			t.Errorf("fund %v: %d %s; want %d %s", c.body, r.status, r.raw, c.status, c.code)
		}
	}
	if av, _ := w.balance(key, "USD"); av != 0 {
		t.Fatalf("refused fundings changed the wallet: %d", av)
	}
	f := w.ok(201, fund(w.op, user, map[string]any{"amount": 5000, "currency": "USD", "reference": "wire 2026-12-04 #881"}))
	if f.str("status") != "succeeded" || f.str("user_id") != user {
		t.Fatalf("funding: %s", f.raw)
	}
	if av, _ := w.balance(key, "USD"); av != 5000 {
		t.Fatalf("after the funding: %d", av)
	}
	if !strings.Contains(logs.String(), `msg="operator funded a wallet" user=`+user+` amount=5000 currency=USD reference="wire 2026-12-04 #881"`) {
		t.Errorf("the funding is not in the server log:\n%s", logs.String())
	}
	// The money is real: the user pays with it.
	mc := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Cafe"}))
	p := w.ok(201, w.call("POST", "/v1/payments", key, "", map[string]any{"amount": 1200, "currency": "USD", "merchant_id": mc.str("id")}))
	if p.str("status") != "captured" {
		t.Fatalf("payment: %s", p.raw)
	}
	w.verify()
	t.Log(auditOK(t, m.URL(), w.op))
}
