package mcpserver_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/mcpserver"
)

// TestCheckoutTools: an agent buys through ACP's five checkout tools, with
// ACP's argument shapes (meta, id, payload): the session is priced from
// the catalog, completed once with a token delegated under its mandate,
// and the money moves once however often complete is retried.
func TestCheckoutTools(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	u := w.user(t, 10000)
	a := w.agent(t, u)
	m := w.merchant(t, "books")
	co := w.be.Checkout
	name, price, dig := "ebook", int64(1200), pb.FulfillmentDigital
	prod := must[*pb.Product](t, co.CreateProduct(ctx, m, nil, checkout.ProductParams{Name: &name, Price: &price, Currency: "USD", Fulfillment: &dig}))
	mdt := w.mandate(t, u, a, 5000, 9000, 0)
	card := must[*checkout.IssuedCard](t, co.IssueCard(ctx, u, nil, mdt))
	cs := w.connect(t, mcpserver.AgentSide, a)
	meta := func(key string) map[string]any {
		return map[string]any{"api_version": "2026-04-17", "idempotency_key": key, "user_agent": "test"}
	}

	var sess map[string]any
	txt := ok(t, cs, "create_checkout_session", map[string]any{"merchant_id": m.ID, "meta": meta("c1"),
		"payload": map[string]any{"currency": "usd", "line_items": []any{map[string]any{"id": prod.ID}}, "capabilities": map[string]any{}}}, &sess)
	id, _ := sess["id"].(string)
	if sess["status"] != "ready_for_payment" || id == "" || txt == "" {
		t.Fatalf("create = %v, %q", sess, txt)
	}
	ok(t, cs, "update_checkout_session", map[string]any{"merchant_id": m.ID, "id": id, "meta": meta("u1"),
		"payload": map[string]any{"line_items": []any{map[string]any{"id": prod.ID}, map[string]any{"id": prod.ID}}}}, &sess)
	ok(t, cs, "get_checkout_session", map[string]any{"merchant_id": m.ID, "id": id, "meta": map[string]any{"api_version": "2026-04-17"}}, &sess)
	if total := totalOf(sess); total != 2400 {
		t.Fatalf("total after update %d; want 2400: %v", total, sess)
	}

	// The agent delegates its card for the session (ACP's delegate_payment,
	// signed: over REST in practice).
	signed := a
	signed.Signed = true
	tok := must[*pb.VaultToken](t, co.DelegatePayment(ctx, signed, nil, checkout.DelegateParams{Number: card.Number, ExpMonth: card.ExpMonth,
		ExpYear: card.ExpYear, Metadata: map[string]string{}, Allowance: checkout.Allowance{Reason: "one_time", MaxAmount: 2400,
			Currency: "USD", CheckoutSessionID: id, MerchantID: m.ID, ExpiresAt: w.clock.Now().Add(time.Hour)}}))
	complete := map[string]any{"merchant_id": m.ID, "id": id, "meta": meta("done"), "payload": map[string]any{
		"buyer": map[string]any{"email": "ada@example.com"},
		"payment_data": map[string]any{"handler_id": "paybound_agent_card", "instrument": map[string]any{"type": "card",
			"credential": map[string]any{"type": "spt", "token": tok.ID}}}}}
	ok(t, cs, "complete_checkout_session", complete, &sess)
	if sess["status"] != "completed" || sess["order"] == nil {
		t.Fatalf("complete = %v", sess)
	}
	ok(t, cs, "complete_checkout_session", complete, &sess) // a retry: the same answer, no second charge
	if w.available(t, u) != 10000-2400 || w.available(t, m) != 2400 {
		t.Fatalf("payer %d, merchant %d after completing", w.available(t, u), w.available(t, m))
	}
	// Refusals: a completed session, another key; a wrong version; no key;
	// another agent's session; a canceled one.
	complete["meta"] = meta("again")
	refused(t, cs, "complete_checkout_session", complete, pb.ErrCheckoutState)
	refused(t, cs, "get_checkout_session", map[string]any{"merchant_id": m.ID, "id": id, "meta": map[string]any{"api_version": "2025-01-01"}}, pb.ErrUnsupportedVersion)
	refused(t, cs, "cancel_checkout_session", map[string]any{"merchant_id": m.ID, "id": id, "meta": map[string]any{"api_version": "2026-04-17"}}, pb.ErrIdempotencyRequired)
	refused(t, cs, "create_checkout_session", map[string]any{"merchant_id": m.ID, "meta": meta("c2"),
		"payload": map[string]any{"currency": "USD", "line_items": []any{map[string]any{"id": prod.ID}}, "capabilities": map[string]any{}}}, pb.ErrInvalidCurrency)
	refused(t, cs, "create_checkout_session", map[string]any{"merchant_id": m.ID, "meta": meta("c3"),
		"payload": map[string]any{"currency": "usd", "line_items": []any{map[string]any{"id": prod.ID}}, "capabilities": map[string]any{}, "tip": 5}}, pb.ErrUnknownField)
	other := w.connect(t, mcpserver.AgentSide, w.agent(t, u))
	refused(t, other, "get_checkout_session", map[string]any{"merchant_id": m.ID, "id": id, "meta": map[string]any{"api_version": "2026-04-17"}}, pb.ErrNotFound)
	var s2 map[string]any
	ok(t, cs, "create_checkout_session", map[string]any{"merchant_id": m.ID, "meta": meta("c4"),
		"payload": map[string]any{"currency": "usd", "line_items": []any{map[string]any{"id": prod.ID}}, "capabilities": map[string]any{}}}, &s2)
	ok(t, cs, "cancel_checkout_session", map[string]any{"merchant_id": m.ID, "id": s2["id"], "meta": meta("x")}, &s2)
	if s2["status"] != "canceled" {
		t.Fatalf("cancel = %v", s2)
	}
	if w.available(t, u) != 10000-2400 {
		t.Fatal("a refused call moved money")
	}
	w.verify(t)
}

func totalOf(s map[string]any) int64 {
	ts, _ := s["totals"].([]any)
	for _, t := range ts {
		if m, _ := t.(map[string]any); m["type"] == "total" {
			f, _ := m["amount"].(float64)
			return int64(f)
		}
	}
	return -1
}

// TestCheckoutToolsFollowOpenRPC: the five checkout tools take the
// arguments of ACP's OpenRPC binding (testdata/openrpc.agentic_checkout.json,
// ACP 2026-04-17), required as it requires them, plus merchant_id.
func TestCheckoutToolsFollowOpenRPC(t *testing.T) {
	b, err := os.ReadFile("testdata/openrpc.agentic_checkout.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Methods []struct {
			Name   string
			Params []struct {
				Name     string
				Required bool
			}
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Methods) != 5 {
		t.Fatalf("openrpc: %d methods, %v", len(doc.Methods), err)
	}
	w := newWorld(t)
	cs := w.connect(t, mcpserver.AgentSide, w.agent(t, w.user(t, 0)))
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]map[string]any{}
	for _, tool := range res.Tools {
		tools[tool.Name], _ = tool.InputSchema.(map[string]any)
	}
	for _, m := range doc.Methods {
		schema, ok := tools[m.Name]
		if !ok {
			t.Errorf("no tool %s", m.Name)
			continue
		}
		props, _ := schema["properties"].(map[string]any)
		req, _ := schema["required"].([]any)
		for _, p := range m.Params {
			if _, ok := props[p.Name]; !ok {
				t.Errorf("%s has no argument %s", m.Name, p.Name)
			}
			if p.Required != slices.Contains(req, any(p.Name)) {
				t.Errorf("%s: argument %s required %v; ACP says %v", m.Name, p.Name, !p.Required, p.Required)
			}
		}
		if !slices.Contains(req, any("merchant_id")) || len(props) != len(m.Params)+1 {
			t.Errorf("%s's arguments %v: ACP's and merchant_id", m.Name, props)
		}
	}
}
