package mcpserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/mcpserver"
)

// TestAgentToolsListed: the agent's server lists its tools, each with an
// input and an output schema and annotations; money-moving tools are not
// read-only and require an idempotency_key.
func TestAgentToolsListed(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 0)
	cs := w.connect(t, mcpserver.AgentSide, w.agent(t, u))
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil || tool.OutputSchema == nil || tool.Annotations == nil || tool.Description == "" {
			t.Errorf("%s lacks a schema, annotations or a description", tool.Name)
		}
	}
	want := []string{"wallet_summary", "list_mandates", "request_mandate", "pay", "get_payment", "list_payments", "wait_for_confirmation", "open_dispute", "pay_x402_resource", "call_paid_tool"}
	for _, n := range want {
		if !slices.Contains(names, n) {
			t.Errorf("tool %s missing from %v", n, names)
		}
	}
	for _, tool := range res.Tools {
		if tool.Name == "pay" {
			if tool.Annotations.ReadOnlyHint || !tool.Annotations.IdempotentHint {
				t.Errorf("pay annotations %+v", tool.Annotations)
			}
			schema, _ := tool.InputSchema.(map[string]any)
			req, _ := schema["required"].([]any)
			if !slices.Contains(req, any("idempotency_key")) || !slices.Contains(req, any("mandate_id")) {
				t.Errorf("pay's required arguments %v", req)
			}
		}
	}
}

// TestPayUnderMandate: an agent pays under its mandate; the money moves
// once however often the call is retried with its key; the wallet summary,
// get_payment and list_payments show it.
func TestPayUnderMandate(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	m := w.merchant(t, "cafe")
	mdt := w.mandate(t, u, a, 1500, 3000, 0)
	cs := w.connect(t, mcpserver.AgentSide, a)

	var wallet mcpserver.WalletOut
	txt := ok(t, cs, "wallet_summary", nil, &wallet)
	if len(wallet.Mandates) != 1 || wallet.Mandates[0].RemainingBudget != 3000 || len(wallet.Spendable) != 1 ||
		wallet.Spendable[0].Amount != 3000 || !strings.Contains(txt, "30.00 USD") {
		t.Fatalf("wallet_summary = %+v\n%s", wallet, txt)
	}
	args := map[string]any{"merchant_id": m.ID, "amount": 1250, "currency": "USD", "description": "2 flat whites",
		"mandate_id": mdt, "idempotency_key": "k1", "provenance": map[string]any{"payee": "user", "amount": "user"}}
	var p mcpserver.PaymentOut
	txt = ok(t, cs, "pay", args, &p)
	if p.Status != "captured" || p.Amount != 1250 || p.AmountFormatted != "12.50 USD" || p.MandateID != mdt || !strings.Contains(txt, "12.50 USD") {
		t.Fatalf("pay = %+v, %q", p, txt)
	}
	// A retry with the same key and arguments is the same payment.
	var again mcpserver.PaymentOut
	ok(t, cs, "pay", args, &again)
	if again.ID != p.ID || w.available(t, u) != 10000-1250 || w.available(t, m) != 1250 {
		t.Fatalf("retry paid again: %s vs %s; payer %d, merchant %d", again.ID, p.ID, w.available(t, u), w.available(t, m))
	}
	var got mcpserver.PaymentOut
	ok(t, cs, "get_payment", map[string]any{"payment_id": p.ID}, &got)
	if got.ID != p.ID || got.Status != "captured" {
		t.Fatalf("get_payment = %+v", got)
	}
	var list struct {
		Data    []mcpserver.PaymentOut `json:"data"`
		HasMore bool                   `json:"has_more"`
	}
	ok(t, cs, "list_payments", map[string]any{"limit": 5}, &list)
	if len(list.Data) != 1 || list.Data[0].ID != p.ID || list.HasMore {
		t.Fatalf("list_payments = %+v", list)
	}
	ok(t, cs, "wallet_summary", nil, &wallet)
	if wallet.Mandates[0].RemainingBudget != 3000-1250 || wallet.Mandates[0].PaymentsCount != 1 {
		t.Fatalf("wallet after paying = %+v", wallet.Mandates[0])
	}
	var ms struct {
		Data []mcpserver.MandateOut `json:"data"`
	}
	ok(t, cs, "list_mandates", nil, &ms)
	if len(ms.Data) != 1 || ms.Data[0].ID != mdt || ms.Data[0].State != "active" {
		t.Fatalf("list_mandates = %+v", ms)
	}
	w.verify(t)
}

// TestPromptInjection: calls a misled model might make — a payee or an
// amount outside the mandate, another user's mandate, a replayed key with
// another amount, no mandate at all — each answers a clear coded error and
// moves no money.
func TestPromptInjection(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	cafe, thief := w.merchant(t, "cafe"), w.merchant(t, "thief")
	mdt := w.mandate(t, u, a, 1000, 3000, 0, cafe.ID)
	other := w.user(t, 10000)
	otherAgent := w.agent(t, other)
	otherMandate := w.mandate(t, other, otherAgent, 1000, 3000, 0)
	cs := w.connect(t, mcpserver.AgentSide, a)

	pay := func(merchant string, amount int64, mandate, key string) map[string]any {
		return map[string]any{"merchant_id": merchant, "amount": amount, "currency": "USD", "description": "x",
			"mandate_id": mandate, "idempotency_key": key, "provenance": map[string]any{"payee": "user", "amount": "user"}}
	}
	// The payee outside the mandate.
	e := refused(t, cs, "pay", pay(thief.ID, 500, mdt, "a"), pb.DeclineMandateMerchant)
	if e.PaymentID == "" {
		t.Fatalf("a decline names its payment: %+v", e)
	}
	// The amount outside the mandate (per payment).
	refused(t, cs, "pay", pay(cafe.ID, 1001, mdt, "b"), pb.DeclineMandateAmountExceeded)
	// Another user's mandate.
	res := call(t, cs, "pay", pay(cafe.ID, 500, otherMandate, "c"), nil)
	if !res.IsError || !strings.Contains(text(res), "mandate") {
		t.Fatalf("another user's mandate: %v %q", res.IsError, text(res))
	}
	// A forged mandate ID.
	res = call(t, cs, "pay", pay(cafe.ID, 500, "mdt_forged", "d"), nil)
	if !res.IsError {
		t.Fatalf("a forged mandate paid: %q", text(res))
	}
	// No mandate: an agent pays only under one.
	args := pay(cafe.ID, 500, mdt, "e")
	delete(args, "mandate_id")
	res = call(t, cs, "pay", args, nil)
	if !res.IsError {
		t.Fatalf("paid without a mandate: %q", text(res))
	}
	// A payee and an amount taken from untrusted text: risk control stops it.
	untrusted := pay(cafe.ID, 500, mdt, "u")
	untrusted["provenance"] = map[string]any{"payee": "untrusted", "amount": "untrusted"}
	refused(t, cs, "pay", untrusted, pb.DeclineRiskBlocked)
	// A replayed key with another amount.
	ok(t, cs, "pay", pay(cafe.ID, 500, mdt, "f"), nil)
	refused(t, cs, "pay", pay(cafe.ID, 900, mdt, "f"), pb.ErrIdempotencyConflict)
	// The budget: 3000 in total, 500 spent; 6 payments of 500 reach it.
	for i := range 5 {
		ok(t, cs, "pay", pay(cafe.ID, 500, mdt, "g"+string(rune('0'+i))), nil)
	}
	refused(t, cs, "pay", pay(cafe.ID, 500, mdt, "h"), pb.DeclineMandateBudgetExhausted)

	if got := w.available(t, u); got != 10000-3000 {
		t.Fatalf("payer's wallet %d; want %d: only the mandate's budget moved", got, 10000-3000)
	}
	if w.available(t, thief) != 0 || w.available(t, other) != 10000 || w.available(t, cafe) != 3000 {
		t.Fatalf("money moved outside the mandate: thief %d, other %d, cafe %d", w.available(t, thief), w.available(t, other), w.available(t, cafe))
	}
	w.verify(t)
}

// TestPayBadArguments: malformed calls are refused as tool results with a
// code, and change nothing.
func TestPayBadArguments(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	m := w.merchant(t, "cafe")
	mdt := w.mandate(t, u, a, 1000, 3000, 0)
	cs := w.connect(t, mcpserver.AgentSide, a)
	good := func() map[string]any {
		return map[string]any{"merchant_id": m.ID, "amount": 100, "currency": "USD", "description": "x", "mandate_id": mdt, "idempotency_key": "k"}
	}
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		code pb.Code
	}{
		{"no key", func(a map[string]any) { a["idempotency_key"] = "" }, pb.ErrIdempotencyRequired},
		{"key with a space", func(a map[string]any) { a["idempotency_key"] = "a b" }, pb.ErrIdempotencyKey},
		{"key too long", func(a map[string]any) { a["idempotency_key"] = strings.Repeat("k", 201) }, pb.ErrIdempotencyKey},
		{"zero amount", func(a map[string]any) { a["amount"] = 0 }, pb.ErrInvalidAmount},
		{"negative amount", func(a map[string]any) { a["amount"] = -5 }, pb.ErrInvalidAmount},
		{"fractional amount", func(a map[string]any) { a["amount"] = 12.5 }, pb.ErrParameterInvalid},
		{"amount as a string", func(a map[string]any) { a["amount"] = "12.50" }, pb.ErrParameterInvalid},
		{"lower-case currency", func(a map[string]any) { a["currency"] = "usd" }, pb.ErrInvalidCurrency},
		{"unknown currency", func(a map[string]any) { a["currency"] = "XXX" }, pb.ErrInvalidCurrency},
		{"unknown argument", func(a map[string]any) { a["approve"] = true }, pb.ErrParameterInvalid},
		{"bad provenance", func(a map[string]any) { a["provenance"] = map[string]any{"payee": "trusted"} }, pb.ErrParameterInvalid},
		{"not a merchant", func(a map[string]any) { a["merchant_id"] = "usr_x" }, pb.ErrParameterInvalid},
		{"long description", func(a map[string]any) { a["description"] = strings.Repeat("x", pb.MaxDescriptionLength+1) }, pb.ErrParameterInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := good()
			tc.edit(args)
			refused(t, cs, "pay", args, tc.code)
		})
	}
	refused(t, cs, "get_payment", map[string]any{"payment_id": "pay_nope"}, pb.ErrNotFound)
	refused(t, cs, "list_payments", map[string]any{"limit": 500}, pb.ErrParameterInvalid)
	refused(t, cs, "list_payments", map[string]any{"starting_after": "mdt_x"}, pb.ErrParameterInvalid)
	refused(t, cs, "list_mandates", map[string]any{"limit": -1}, pb.ErrParameterInvalid)
	refused(t, cs, "wait_for_confirmation", map[string]any{"payment_id": "pay_x", "timeout_seconds": 301}, pb.ErrParameterInvalid)
	if w.available(t, u) != 10000 || w.available(t, m) != 0 {
		t.Fatal("a refused call moved money")
	}
	w.verify(t)
}

// TestPayNeedsConfirmation: above the mandate's confirm_above the payment
// waits for the user, with the absolute link the user opens; the hold is
// not placed until then, and wait_for_confirmation reports it still waits.
func TestPayNeedsConfirmation(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	m := w.merchant(t, "cafe")
	mdt := w.mandate(t, u, a, 5000, 9000, 2000)
	cs := w.connect(t, mcpserver.AgentSide, a)
	var p mcpserver.PaymentOut
	txt := ok(t, cs, "pay", map[string]any{"merchant_id": m.ID, "amount": 3000, "currency": "USD", "description": "big",
		"mandate_id": mdt, "idempotency_key": "k"}, &p)
	if p.Status != "requires_confirmation" || !strings.HasPrefix(p.ConfirmationURL, "https://pay.example.com/v1/confirmations/cfm_") ||
		!strings.Contains(txt, p.ConfirmationURL) {
		t.Fatalf("pay above confirm_above = %+v, %q", p, txt)
	}
	var wait mcpserver.WaitOut
	txt = ok(t, cs, "wait_for_confirmation", map[string]any{"payment_id": p.ID, "timeout_seconds": 1}, &wait)
	if !wait.Waiting || wait.Payment.Status != "requires_confirmation" || !strings.Contains(txt, "not decided") {
		t.Fatalf("wait = %+v, %q", wait, txt)
	}
	if w.available(t, u) != 10000 {
		t.Fatalf("a payment waiting for its user holds money: %d", w.available(t, u))
	}
	// The payer cancels it: the wait ends with the payment's outcome.
	if r := w.svc.Cancel(context.Background(), u, nil, p.ID); r.Err != nil {
		t.Fatal(r.Err)
	}
	txt = ok(t, cs, "wait_for_confirmation", map[string]any{"payment_id": p.ID, "timeout_seconds": 5}, &wait)
	if wait.Waiting || wait.Payment.Status != "canceled" || !strings.Contains(txt, "did not approve") {
		t.Fatalf("wait after cancel = %+v, %q", wait, txt)
	}
	w.verify(t)
}

// TestRequestMandate: the request waits in the user's wallet, listed for
// the user, and nothing is granted until they approve it; a retry asks
// once; bad terms are refused and create nothing.
func TestRequestMandate(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 0)
	a := w.agent(t, u)
	m := w.merchant(t, "rail")
	cs := w.connect(t, mcpserver.AgentSide, a)
	args := func(kv ...any) map[string]any {
		in := map[string]any{"description": "train tickets", "reason": "you asked me to book the trip to Lyon", "currency": "EUR",
			"max_amount": 8000, "budget_amount": 20000, "budget_period": "month", "merchant_ids": []string{m.ID}, "idempotency_key": "r1"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(in, kv[i].(string))
			} else {
				in[kv[i].(string)] = kv[i+1]
			}
		}
		return in
	}
	var out mcpserver.MandateRequestOut
	txt := ok(t, cs, "request_mandate", args(), &out)
	if out.Status != "awaiting_user" || !strings.HasPrefix(out.RequestID, pb.PrefixMandateRequest) || out.AgentID != a.ID ||
		out.WalletURL != "https://pay.example.com/wallet/mandates#r-"+out.RequestID || !strings.Contains(txt, "80.00 EUR") ||
		!strings.Contains(txt, out.WalletURL) || out.BudgetPeriod != "month" || len(out.MerchantIDs) != 1 {
		t.Fatalf("request_mandate = %+v, %q", out, txt)
	}
	listed := func() []pb.MandateRequest {
		t.Helper()
		rs, _, err := w.reqs.List(context.Background(), u, "", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if rs := listed(); len(rs) != 1 || rs[0].ID != out.RequestID || rs[0].Status != pb.MandateRequestPending ||
		rs[0].Reason != "you asked me to book the trip to Lyon" || rs[0].Terms.MaxAmount != 8000 || rs[0].Terms.Currency != "EUR" {
		t.Fatalf("the user's requests: %+v", rs)
	}
	// A retry with the same key asks once.
	var again mcpserver.MandateRequestOut
	ok(t, cs, "request_mandate", args(), &again)
	if again.RequestID != out.RequestID || len(listed()) != 1 {
		t.Fatalf("retry = %+v; requests %d", again, len(listed()))
	}
	for _, c := range []struct {
		name string
		args map[string]any
		code pb.Code
	}{
		{"max above budget", args("max_amount", 90000, "idempotency_key", "b1"), pb.ErrParameterInvalid},
		{"bad period", args("budget_period", "year", "idempotency_key", "b2"), pb.ErrParameterInvalid},
		{"no description", args("description", "", "idempotency_key", "b3"), pb.ErrParameterMissing},
		{"no reason", args("reason", " ", "idempotency_key", "b4"), pb.ErrParameterMissing},
		{"bad currency", args("currency", "euro", "idempotency_key", "b5"), pb.ErrInvalidCurrency},
		{"bad merchant", args("merchant_ids", []string{"bob"}, "idempotency_key", "b6"), pb.ErrParameterInvalid},
		{"negative amount", args("max_amount", -1, "idempotency_key", "b7"), pb.ErrInvalidAmount},
		{"no key", args("idempotency_key", nil), pb.ErrParameterInvalid},
		{"empty key", args("idempotency_key", ""), pb.ErrIdempotencyRequired},
		{"key reused", args("max_amount", 100), pb.ErrIdempotencyConflict},
		{"unknown argument", args("agent_id", "agt_x", "idempotency_key", "b8"), pb.ErrParameterInvalid},
	} {
		t.Run(c.name, func(t *testing.T) { refused(t, cs, "request_mandate", c.args, c.code) })
	}
	if n := len(listed()); n != 1 {
		t.Fatalf("refused requests were stored: %d requests", n)
	}
	if vs, _, err := w.mdt.List(context.Background(), u, "", 10); err != nil || len(vs) != 0 {
		t.Fatalf("a request granted a mandate: %v, %v", vs, err)
	}
	// Once the user approves it, the mandate is the agent's.
	must[*pb.MandateRequest](t, w.reqs.Approve(context.Background(), u, nil, out.RequestID))
	var ms mcpserver.List[mcpserver.MandateOut]
	ok(t, cs, "list_mandates", nil, &ms)
	if len(ms.Data) != 1 || ms.Data[0].MaxAmount != 8000 || ms.Data[0].Description != "train tickets" {
		t.Fatalf("mandates after approval: %+v", ms)
	}
}

// TestOpenDispute: an agent disputes a payment it made, for its user; not
// one another agent made.
func TestOpenDispute(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 10000)
	a, b := w.agent(t, u), w.agent(t, u)
	m := w.merchant(t, "cafe")
	mdtA, mdtB := w.mandate(t, u, a, 1000, 3000, 0), w.mandate(t, u, b, 1000, 3000, 0)
	csA, csB := w.connect(t, mcpserver.AgentSide, a), w.connect(t, mcpserver.AgentSide, b)
	var pa, pbb mcpserver.PaymentOut
	ok(t, csA, "pay", map[string]any{"merchant_id": m.ID, "amount": 700, "currency": "USD", "description": "x", "mandate_id": mdtA, "idempotency_key": "k"}, &pa)
	ok(t, csB, "pay", map[string]any{"merchant_id": m.ID, "amount": 300, "currency": "USD", "description": "y", "mandate_id": mdtB, "idempotency_key": "k"}, &pbb)
	var d mcpserver.DisputeOut
	ok(t, csA, "open_dispute", map[string]any{"payment_id": pa.ID, "reason": "not_as_intended", "details": "wrong size", "idempotency_key": "d"}, &d)
	if d.PaymentID != pa.ID || d.Status != "open" || d.Amount != 700 {
		t.Fatalf("open_dispute = %+v", d)
	}
	refused(t, csA, "open_dispute", map[string]any{"payment_id": pbb.ID, "reason": "other", "idempotency_key": "d2"}, pb.ErrNotFound)
	refused(t, csA, "open_dispute", map[string]any{"payment_id": pa.ID, "reason": "bored", "idempotency_key": "d3"}, pb.ErrParameterInvalid)
	refused(t, csA, "open_dispute", map[string]any{"payment_id": pa.ID, "reason": "other"}, pb.ErrParameterInvalid)
	w.verify(t)
}

// TestResourcesAndPrompt: the agent reads its mandates and payments as
// resources, and the prompt that explains how to pay safely.
func TestResourcesAndPrompt(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	mdt := w.mandate(t, u, a, 1000, 3000, 0)
	cs := w.connect(t, mcpserver.AgentSide, a)
	ctx := context.Background()
	r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: mcpserver.MandatesURI})
	if err != nil || len(r.Contents) != 1 || !strings.Contains(r.Contents[0].Text, mdt) {
		t.Fatalf("mandates resource: %+v, %v", r, err)
	}
	r, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: mcpserver.PaymentsURI})
	if err != nil || len(r.Contents) != 1 || !strings.Contains(r.Contents[0].Text, `"data":[]`) {
		t.Fatalf("payments resource: %+v, %v", r, err)
	}
	p, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: mcpserver.PromptPaySafely})
	if err != nil || len(p.Messages) != 1 || !strings.Contains(p.Messages[0].Content.(*mcp.TextContent).Text, "idempotency_key") {
		t.Fatalf("prompt: %+v, %v", p, err)
	}
}
