package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/storetest"
)

// acpSchemas are ACP's JSON schemas (internal/acp/testdata, release
// 2026-04-17), compiled once, formats asserted.
var acpSchemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	files := map[string]string{"checkout": "schema.agentic_checkout.json", "delegate": "schema.delegate_payment.json"}
	urls := map[string]string{}
	for name, f := range files {
		raw, err := os.ReadFile("../../internal/acp/testdata/" + f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		urls[name] = "file:///acp/" + f
		if err := c.AddResource(urls[name], doc); err != nil {
			return nil, err
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, d := range []string{"checkout:CheckoutSession", "checkout:CheckoutSessionWithOrder", "checkout:CheckoutSessionCreateRequest",
		"checkout:CheckoutSessionUpdateRequest", "checkout:CheckoutSessionCompleteRequest", "checkout:CancelSessionRequest", "checkout:Error", "checkout:Order",
		"delegate:DelegatePaymentRequest", "delegate:DelegatePaymentResponse", "delegate:Error"} {
		file, def, _ := strings.Cut(d, ":")
		s, err := c.Compile(urls[file] + "#/$defs/" + def)
		if err != nil {
			return nil, err
		}
		out[d] = s
	}
	return out, nil
})

// validateACP checks raw against ACP's schema def ("checkout:Error").
func validateACP(t testing.TB, def string, raw []byte) {
	t.Helper()
	schemas, err := acpSchemas()
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: not JSON: %v: %s", def, err, raw)
	}
	if err := schemas[def].Validate(v); err != nil {
		t.Fatalf("%s does not conform: %v\n%s", def, err, raw)
	}
}

// acpShop is a world with an agent that signs (its key registered), a
// catalog of two products at w.merch, and a mandate with a card.
type acpShop struct {
	*world
	clock            *testClock
	signer           *signer
	agent, agentKey  string
	tea, mug         string
	mandate          string
	card             resp
	cardNo, cardLast string
}

func newShop(t *testing.T) *acpShop { return newShopDB(t, "") }

// newShopDB is newShop on database db ("": the test's own).
func newShopDB(t *testing.T, db string) *acpShop {
	return newShopWith(t, func(m *Main) {
		if db != "" {
			m.Config.DB = db
		}
	})
}

// newShopWith is newShop with configure applied to its Main.
func newShopWith(t *testing.T, configure func(*Main)) *acpShop {
	clock := &testClock{now: time.Now().UTC()}
	w := newWorld(t, func(m *Main) {
		m.Clock = clock
		configure(m)
	})
	s := &acpShop{world: w, clock: clock}
	var jwk string
	s.signer, jwk = newSigner(t)
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Shopper", "public_key": json.RawMessage(jwk)}))
	s.agent, s.agentKey = ag.str("id"), ag.str("api_key")
	s.tea = w.ok(201, w.call("POST", "/v1/products", w.merchKey, "", map[string]any{"name": "Green tea (e-book)", "sku": "TEA-1",
		"price": 1200, "currency": "USD", "fulfillment": "digital"})).str("id")
	s.mug = w.ok(201, w.call("POST", "/v1/products", w.merchKey, "", map[string]any{"name": "Mug", "sku": "MUG-1",
		"price": 2500, "currency": "USD", "fulfillment": "shipping"})).str("id")
	s.mandate = w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": s.agent, "description": "kitchen things, at most 100 dollars",
		"currency": "USD", "max_amount": 10000, "budget": map[string]any{"amount": 20000, "period": "week"}, "merchant_ids": []string{w.merch}})).str("id")
	s.card = w.ok(201, w.call("POST", "/v1/mandates/"+s.mandate+"/card", w.userKey, "", nil))
	s.cardNo, s.cardLast = s.card.str("number"), s.card.str("display_last4")
	return s
}

// acp sends an ACP request with API-Version 2026-04-17 unless hdr sets it
// ("" removes a header), validating the request and the response against
// ACP's schemas: def is the request's schema def.
func (s *acpShop) acp(method, path, key, idem string, body any, reqDef string, hdr map[string]string) resp {
	s.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
		if reqDef != "" {
			validateACP(s.t, reqDef, raw)
		}
	}
	req, _ := http.NewRequest(method, s.base+path, bytes.NewReader(raw))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("API-Version", checkout.ACPVersion)
	req.Header.Set("Request-Id", "req-"+idem)
	if method == "POST" {
		req.Header.Set("Idempotency-Key", idem)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	out := resp{status: res.StatusCode, header: res.Header}
	out.raw, _ = io.ReadAll(res.Body)
	json.Unmarshal(out.raw, &out.body)
	if got := res.Header.Get("Request-Id"); got != req.Header.Get("Request-Id") {
		s.t.Errorf("Request-Id echoed %q, sent %q", got, req.Header.Get("Request-Id"))
	}
	file := "checkout:"
	if strings.HasPrefix(path, "/agentic_commerce/") {
		file = "delegate:"
	}
	switch {
	case out.status == 401 && file == "delegate:":
		// delegate_payment's Error closes its codes to card and idempotency
		// refusals; an authentication refusal has ACP's general Error shape
		// (docs/acp.md).
		validateACP(s.t, "checkout:Error", out.raw)
	case out.status >= 400:
		validateACP(s.t, file+"Error", out.raw)
	case file == "delegate:":
		validateACP(s.t, "delegate:DelegatePaymentResponse", out.raw)
	case out.str("status") == "completed":
		validateACP(s.t, "checkout:CheckoutSessionWithOrder", out.raw)
	default:
		validateACP(s.t, "checkout:CheckoutSession", out.raw)
	}
	return out
}

func (s *acpShop) sessions(merchant string) string { return "/acp/" + merchant + "/checkout_sessions" }

// delegate signs and sends a delegate_payment of number for session.
func (s *acpShop) delegate(key, idem, number, session, merchant string, max int64, expires time.Time, sign *signer) resp {
	s.t.Helper()
	return s.delegateWith(key, idem, number, session, merchant, max, expires, sign, nil)
}

// delegateWith is delegate with headers changed after signing ("" removes
// one).
func (s *acpShop) delegateWith(key, idem, number, session, merchant string, max int64, expires time.Time, sign *signer, change map[string]string) resp {
	s.t.Helper()
	body := map[string]any{
		"payment_method": map[string]any{"type": "card", "card_number_type": "fpan", "number": number, "exp_month": s.card.str("exp_month"),
			"exp_year": s.card.str("exp_year"), "display_card_funding_type": "credit", "display_last4": number[len(number)-4:], "metadata": map[string]string{}},
		"allowance": map[string]any{"reason": "one_time", "max_amount": max, "currency": "usd", "checkout_session_id": session,
			"merchant_id": merchant, "expires_at": expires.UTC().Format(time.RFC3339)},
		"risk_signals": []any{}, "metadata": map[string]string{"source": "test"},
	}
	raw, _ := json.Marshal(body)
	ts := s.clock.Now().UTC().Format(time.RFC3339)
	hdr := map[string]string{"Timestamp": ts, "Signature": base64.StdEncoding.EncodeToString(ed25519.Sign(sign.key, append([]byte(ts+"."), raw...)))}
	for k, v := range change {
		hdr[k] = v
	}
	return s.acp("POST", "/agentic_commerce/delegate_payment", key, idem, json.RawMessage(raw), "delegate:DelegatePaymentRequest", hdr)
}

func completeBody(token string) map[string]any {
	return map[string]any{"buyer": map[string]any{"first_name": "Ada", "email": "ada@example.com"},
		"payment_data": map[string]any{"handler_id": checkout.HandlerID,
			"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": token}}}}
}

var shipTo = map[string]any{"name": "Ada", "address": map[string]any{"name": "Ada", "line_one": "1 Main St", "city": "Springfield",
	"state": "IL", "country": "US", "postal_code": "62701"}}

// TestACPCheckoutOverHTTP: an agent under a mandate buys two products
// through ACP (create, update, delegate_payment with its agent card,
// complete); the payment is captured; a retried complete after a lost
// response charges once; the merchant refunds one item; the ledger checks.
func TestACPCheckoutOverHTTP(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	if n := s.cardNo; len(n) != checkout.CardLength || !strings.HasPrefix(n, checkout.CardIIN) || !checkout.LuhnValid(n) || s.cardLast != n[len(n)-4:] {
		t.Fatalf("card: %s", s.card.raw)
	}
	userBefore, _ := s.balance(s.userKey, "USD")

	c := s.ok(201, s.acp("POST", s.sessions(s.merch), s.agentKey, "c1", map[string]any{"currency": "usd",
		"line_items": []any{map[string]any{"id": s.tea}}, "capabilities": map[string]any{}}, "checkout:CheckoutSessionCreateRequest", nil))
	id := c.str("id")
	if c.str("status") != "ready_for_payment" || c.str("currency") != "usd" || c.header.Get("Idempotency-Key") != "c1" {
		t.Fatalf("create: %s", c.raw)
	}
	// Two products: the mug ships, so the session needs an address.
	u := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id, s.agentKey, "u1", map[string]any{
		"line_items": []any{map[string]any{"id": s.tea}, map[string]any{"id": s.mug}}}, "checkout:CheckoutSessionUpdateRequest", nil))
	if u.str("status") != "not_ready_for_payment" || !strings.Contains(string(u.raw), `"param":"$.fulfillment_details.address"`) {
		t.Fatalf("update without an address: %s", u.raw)
	}
	u = s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id, s.agentKey, "u2", map[string]any{"fulfillment_details": shipTo},
		"checkout:CheckoutSessionUpdateRequest", nil))
	if u.str("status") != "ready_for_payment" || total(u) != 3700 || len(u.body["line_items"].([]any)) != 2 {
		t.Fatalf("update with an address: %s", u.raw)
	}
	tok := s.ok(201, s.delegate(s.agentKey, "d1", s.cardNo, id, s.merch, 3700, s.clock.Now().Add(time.Hour), s.signer))
	if !strings.HasPrefix(tok.str("id"), "vt_") {
		t.Fatalf("delegate: %s", tok.raw)
	}
	done := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id+"/complete", s.agentKey, "k1", completeBody(tok.str("id")),
		"checkout:CheckoutSessionCompleteRequest", nil))
	order, _ := done.body["order"].(map[string]any)
	meta, _ := done.body["metadata"].(map[string]any)
	payID, _ := meta["payment_id"].(string)
	if done.str("status") != "completed" || order == nil || payID == "" {
		t.Fatalf("complete: %s", done.raw)
	}
	p := s.ok(200, s.call("GET", "/v1/payments/"+payID, s.agentKey, "", nil))
	if p.str("status") != "captured" || p.num("amount") != 3700 || p.str("mandate_id") != s.mandate || p.str("agent_id") != s.agent {
		t.Fatalf("payment: %s", p.raw)
	}
	// The response was lost: the agent sends complete again, same key.
	again := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id+"/complete", s.agentKey, "k1", completeBody(tok.str("id")), "", nil))
	if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.raw, done.raw) {
		t.Fatalf("replay: %s %s", again.header, again.raw)
	}
	// And with a new key: refused, nothing charged again.
	if r := s.acp("POST", s.sessions(s.merch)+"/"+id+"/complete", s.agentKey, "k2", completeBody(tok.str("id")), "", nil); r.status != 409 || r.str("code") != "checkout_session_state" {
		t.Fatalf("complete again: %d %s", r.status, r.raw)
	}
	if avail, _ := s.balance(s.userKey, "USD"); avail != userBefore-3700 {
		t.Fatalf("user paid %d, want 3700 once", userBefore-avail)
	}
	if avail, _ := s.balance(s.merchKey, "USD"); avail != 3700 {
		t.Fatalf("merchant has %d, want 3700", avail)
	}
	// The merchant refunds the mug.
	s.ok(201, s.call("POST", "/v1/payments/"+payID+"/refunds", s.merchKey, "", map[string]any{"amount": 2500, "reason": "broken mug"}))
	g := s.ok(200, s.acp("GET", s.sessions(s.merch)+"/"+id, s.agentKey, "", nil, "", nil))
	if !strings.Contains(string(g.raw), `{"type":"amount_refunded","display_text":"Refunded","amount":2500}`) {
		t.Fatalf("session after the refund: %s", g.raw)
	}
	if avail, _ := s.balance(s.userKey, "USD"); avail != userBefore-1200 {
		t.Fatalf("user after the refund: %d, want %d", avail, userBefore-1200)
	}
	// The session's entries in the transparency log: its completion and the
	// refund's update of its order, which the webhooks announce. (A shared
	// store numbers entries as the checkpointer integrates them, within a
	// second or so.)
	var types []string
	for try := 0; try < 100 && len(types) < 2; try++ {
		time.Sleep(time.Duration(try) * 10 * time.Millisecond)
		types = types[:0]
		for i := 0; ; i++ {
			e := s.call("GET", "/v1/log/entries/"+fmt.Sprint(i), s.op, "", nil)
			if e.status == 404 {
				break
			}
			if e.str("subject") == id {
				types = append(types, e.str("type"))
			}
		}
	}
	if strings.Join(types, " ") != "checkout_session.completed checkout_session.order_updated" {
		t.Fatalf("the session's log entries: %v", types)
	}
	s.verify()
}

func total(r resp) int64 {
	ts, _ := r.body["totals"].([]any)
	for _, x := range ts {
		if m := x.(map[string]any); m["type"] == "total" {
			return int64(m["amount"].(float64))
		}
	}
	return -1
}

func (r resp) acpCode() string { return r.str("code") + " " + r.str("param") }

// TestACPBadInputs: each bad input of the checkout's error model is a
// precise ACP error, and changes nothing: balances, the session.
func TestACPBadInputs(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.ok(201, s.acp("POST", s.sessions(s.merch), s.agentKey, "c1", map[string]any{"currency": "usd",
		"line_items": []any{map[string]any{"id": s.tea}, map[string]any{"id": s.tea}}, "capabilities": map[string]any{}}, "checkout:CheckoutSessionCreateRequest", nil))
	id := c.str("id")
	path := s.sessions(s.merch) + "/" + id
	if total(c) != 2400 {
		t.Fatalf("two teas: %s", c.raw)
	}
	// Another agent of the same user, with a card of its own.
	signer2, jwk2 := newSigner(t)
	ag2 := s.ok(201, s.call("POST", "/v1/agents", s.userKey, "", map[string]any{"name": "Other", "public_key": json.RawMessage(jwk2)}))
	m2 := s.ok(201, s.call("POST", "/v1/mandates", s.userKey, "", map[string]any{"agent_id": ag2.str("id"), "description": "x",
		"currency": "USD", "max_amount": 10000, "budget": map[string]any{"amount": 20000, "period": "week"}})).str("id")
	card2 := s.ok(201, s.call("POST", "/v1/mandates/"+m2+"/card", s.userKey, "", nil)).str("number")
	// A session at the other merchant, for the wrong-merchant cases.
	other := s.ok(201, s.call("POST", "/v1/products", s.merch2Key, "", map[string]any{"name": "Pen", "price": 100, "currency": "USD", "fulfillment": "digital"})).str("id")
	c2 := s.ok(201, s.acp("POST", s.sessions(s.merch2), s.agentKey, "c2", map[string]any{"currency": "usd",
		"line_items": []any{map[string]any{"id": other}}, "capabilities": map[string]any{}}, "", nil)).str("id")

	before := snapshotACP(s, path)
	soon := s.clock.Now().Add(time.Hour)
	luhnBad := s.cardNo[:len(s.cardNo)-1] + fmt.Sprint((int(s.cardNo[len(s.cardNo)-1]-'0')+1)%10)
	unknown := checkout.CardIIN + "000000000000"
	unknown += fmt.Sprint(luhnFor(unknown))
	small := s.ok(201, s.delegate(s.agentKey, "small", s.cardNo, id, s.merch, 100, soon, s.signer)).str("id")
	short := s.ok(201, s.delegate(s.agentKey, "short", s.cardNo, id, s.merch, 2400, s.clock.Now().Add(2*time.Minute), s.signer)).str("id")
	good := s.ok(201, s.delegate(s.agentKey, "good", s.cardNo, id, s.merch, 2400, soon, s.signer)).str("id")

	for _, tc := range []struct {
		name   string
		r      func() resp
		status int
		want   string // code and param
	}{
		{"no API-Version", func() resp { return s.acp("GET", path, s.agentKey, "", nil, "", map[string]string{"API-Version": ""}) }, 400, "unsupported_api_version API-Version"},
		{"old API-Version", func() resp {
			return s.acp("GET", path, s.agentKey, "", nil, "", map[string]string{"API-Version": "2025-09-29"})
		}, 400, "unsupported_api_version API-Version"},
		{"no Idempotency-Key", func() resp {
			return s.acp("POST", path, s.agentKey, "x", map[string]any{}, "", map[string]string{"Idempotency-Key": ""})
		}, 400, "idempotency_key_required Idempotency-Key"},
		{"a key reused with another body", func() resp {
			return s.acp("POST", s.sessions(s.merch), s.agentKey, "c1", map[string]any{"currency": "usd",
				"line_items": []any{map[string]any{"id": s.mug}}, "capabilities": map[string]any{}}, "", nil)
		}, 422, "idempotency_conflict "},
		{"no credentials", func() resp { return s.acp("GET", path, "", "", nil, "", map[string]string{"Authorization": ""}) }, 401, "unauthenticated "},
		{"upper-case currency", func() resp {
			return s.acp("POST", s.sessions(s.merch), s.agentKey, "c3", map[string]any{"currency": "USD",
				"line_items": []any{map[string]any{"id": s.tea}}, "capabilities": map[string]any{}}, "", nil)
		}, 400, "invalid_currency $.currency"},
		{"an unknown product", func() resp {
			return s.acp("POST", s.sessions(s.merch), s.agentKey, "c4", map[string]any{"currency": "usd",
				"line_items": []any{map[string]any{"id": other}}, "capabilities": map[string]any{}}, "", nil)
		}, 400, "product_unavailable $.line_items[0].id"},
		{"a wrong card number", func() resp { return s.delegate(s.agentKey, "d1", luhnBad, id, s.merch, 2400, soon, s.signer) }, 400, "invalid_card $.payment_method.number"},
		{"a number no card has", func() resp { return s.delegate(s.agentKey, "d2", unknown, id, s.merch, 2400, soon, s.signer) }, 400, "invalid_card $.payment_method.number"},
		{"another agent's card", func() resp { return s.delegate(s.agentKey, "d3", card2, id, s.merch, 2400, soon, s.signer) }, 400, "invalid_card $.payment_method.number"},
		{"no Signature", func() resp {
			return s.delegateWith(s.agentKey, "d8", s.cardNo, id, s.merch, 2400, soon, s.signer, map[string]string{"Signature": ""})
		}, 401, "signature_missing Signature"},
		{"a stale Timestamp", func() resp {
			old := s.clock.Now().Add(-6 * time.Minute).UTC().Format(time.RFC3339)
			return s.delegateWith(s.agentKey, "d9", s.cardNo, id, s.merch, 2400, soon, s.signer, map[string]string{"Timestamp": old})
		}, 401, "signature_expired Timestamp"},
		{"a signature of another body", func() resp {
			ts := s.clock.Now().UTC().Format(time.RFC3339)
			sig := base64.StdEncoding.EncodeToString(ed25519.Sign(s.signer.key, []byte(ts+".{}")))
			return s.delegateWith(s.agentKey, "d10", s.cardNo, id, s.merch, 2400, soon, s.signer, map[string]string{"Timestamp": ts, "Signature": sig})
		}, 401, "signature_invalid Signature"},
		{"a signature by another key", func() resp { return s.delegate(s.agentKey, "d4", s.cardNo, id, s.merch, 2400, soon, signer2) }, 401, "signature_invalid Signature"},
		{"an allowance above the mandate", func() resp { return s.delegate(s.agentKey, "d5", s.cardNo, id, s.merch, 10001, soon, s.signer) }, 400, "invalid_card $.allowance.max_amount"},
		{"an allowance at another merchant", func() resp { return s.delegate(s.agentKey, "d6", s.cardNo, c2, s.merch2, 2400, soon, s.signer) }, 400, "invalid_card $.allowance.merchant_id"},
		{"a session at the wrong merchant", func() resp {
			return s.acp("POST", s.sessions(s.merch2)+"/"+id+"/complete", s.agentKey, "k0", completeBody(good), "", nil)
		}, 404, "resource_missing $.checkout_session_id"},
		{"a token for another merchant's session", func() resp {
			return s.acp("POST", s.sessions(s.merch2)+"/"+c2+"/complete", s.agentKey, "k1", completeBody(good), "", nil)
		}, 400, "payment_token_invalid $.payment_data.instrument.credential.token"},
		{"a token over its allowance", func() resp {
			return s.acp("POST", path+"/complete", s.agentKey, "k2", completeBody(small), "", nil)
		}, 400, "payment_token_invalid $.payment_data.instrument.credential.token"},
		{"an expired token", func() resp {
			s.clock.Advance(3 * time.Minute)
			return s.acp("POST", path+"/complete", s.agentKey, "k3", completeBody(short), "", nil)
		}, 400, "payment_token_invalid $.payment_data.instrument.credential.token"},
		{"another agent completing", func() resp {
			return s.acp("POST", path+"/complete", ag2.str("api_key"), "k4", completeBody(good), "", nil)
		}, 404, "resource_missing $.checkout_session_id"},
		{"a revoked mandate's token", func() resp {
			s.ok(200, s.call("POST", "/v1/mandates/"+s.mandate+"/revoke", s.userKey, "", nil))
			return s.acp("POST", path+"/complete", s.agentKey, "k5", completeBody(good), "", nil)
		}, 400, "payment_token_invalid $.payment_data.instrument.credential.token"},
		{"a revoked mandate's card", func() resp { return s.delegate(s.agentKey, "d7", s.cardNo, id, s.merch, 2400, soon, s.signer) }, 400, "invalid_card $.payment_method.number"},
	} {
		r := tc.r()
		if r.status != tc.status || r.acpCode() != tc.want {
			t.Errorf("%s: %d %s; want %d %s", tc.name, r.status, r.raw, tc.status, tc.want)
		}
		if strings.Contains(tc.want, "unsupported_api_version") && !strings.Contains(string(r.raw), `"supported_versions":["`+checkout.ACPVersion+`"]`) {
			t.Errorf("%s: no supported_versions: %s", tc.name, r.raw)
		}
		if after := snapshotACP(s, path); after != before {
			t.Fatalf("%s changed something:\n%s\nwas\n%s", tc.name, after, before)
		}
	}
	// A revoked mandate's card cannot be issued again either.
	if r := s.call("POST", "/v1/mandates/"+s.mandate+"/card", s.userKey, "", nil); r.status != 409 || r.errField("code") != "mandate_not_in_force" {
		t.Fatalf("a card of a revoked mandate: %d %s", r.status, r.raw)
	}
	s.verify()
}

// snapshotACP is what a bad input must not change: the balances and the
// session (as its agent sees it, but the clock's expiry).
func snapshotACP(s *acpShop, path string) string {
	u, _ := s.balance(s.userKey, "USD")
	m, _ := s.balance(s.merchKey, "USD")
	g := s.ok(200, s.acp("GET", path, s.agentKey, "", nil, "", nil))
	return fmt.Sprintf("user %d merchant %d session %s %s %d", u, m, g.str("status"), g.str("updated_at"), total(g))
}

// luhnFor is the check digit of body.
func luhnFor(body string) int {
	for d := range 10 {
		if checkout.LuhnValid(body + fmt.Sprint(d)) {
			return d
		}
	}
	return -1
}

// cardFor grants the shop's agent another mandate (extra fields added to
// a USD mandate at w.merch) and issues its card.
func (s *acpShop) cardFor(extra map[string]any) (mandate, number string) {
	s.t.Helper()
	grant := map[string]any{"agent_id": s.agent, "description": "tea", "currency": "USD", "max_amount": 10000,
		"budget": map[string]any{"amount": 20000, "period": "week"}, "merchant_ids": []string{s.merch}}
	for k, v := range extra {
		grant[k] = v
	}
	mandate = s.ok(201, s.call("POST", "/v1/mandates", s.userKey, "", grant)).str("id")
	return mandate, s.ok(201, s.call("POST", "/v1/mandates/"+mandate+"/card", s.userKey, "", nil)).str("number")
}

// teaSession opens a session of n teas.
func (s *acpShop) teaSession(n int) string {
	s.t.Helper()
	var items []any
	for range n {
		items = append(items, map[string]any{"id": s.tea})
	}
	return s.ok(201, s.acp("POST", s.sessions(s.merch), s.agentKey, fmt.Sprintf("tea-%d-%d", n, s.seq.Add(1)), map[string]any{"currency": "usd",
		"line_items": items, "capabilities": map[string]any{}}, "checkout:CheckoutSessionCreateRequest", nil)).str("id")
}

// pay delegates number for session and completes it with the token.
func (s *acpShop) pay(session, number string, max int64) resp {
	s.t.Helper()
	tok := s.ok(201, s.delegate(s.agentKey, fmt.Sprintf("d-%s", session), number, session, s.merch, max, s.clock.Now().Add(time.Hour), s.signer)).str("id")
	return s.acp("POST", s.sessions(s.merch)+"/"+session+"/complete", s.agentKey, "k-"+session, completeBody(tok), "checkout:CheckoutSessionCompleteRequest", nil)
}

// TestACPDecline: a payment the mandate declines leaves the session
// ready_for_payment with a payment_declined message and charges nothing.
// (TestACPApprovalSettlesTheSession covers the user's approval, denial and
// the confirmation's expiry.)
func TestACPDecline(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	// A decline: the budget (30.00) has room for two teas, not three.
	_, budgetCard := s.cardFor(map[string]any{"max_amount": 3000, "budget": map[string]any{"amount": 3000, "period": "total"}})
	userBefore, _ := s.balance(s.userKey, "USD")
	s.ok(200, s.pay(s.teaSession(2), budgetCard, 2400))
	id3 := s.teaSession(1)
	d := s.ok(200, s.pay(id3, budgetCard, 1200))
	if d.str("status") != "ready_for_payment" || !strings.Contains(string(d.raw), `"code":"payment_declined"`) ||
		!strings.Contains(string(d.raw), "mandate_budget_exhausted") || d.body["metadata"].(map[string]any)["declined_payment_id"] == nil {
		t.Fatalf("a declined completion: %s", d.raw)
	}
	if avail, _ := s.balance(s.userKey, "USD"); avail != userBefore-2400 {
		t.Fatalf("user paid %d, want 2400", userBefore-avail)
	}
	s.verify()
}

// TestACPConcurrentCompletes: many completes of one session at once, each
// with its own Idempotency-Key and the same token, charge once.
func TestACPConcurrentCompletes(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	hammerComplete(t, s, s)
}

// hammerComplete sends twenty completes of one new session of s's at
// once, alternately through each of servers, each with its own key and the
// same token, and checks that one completes it and the user pays once.
func hammerComplete(t *testing.T, s *acpShop, servers ...*acpShop) {
	id := s.teaSession(1)
	tok := s.ok(201, s.delegate(s.agentKey, "d", s.cardNo, id, s.merch, 1200, s.clock.Now().Add(time.Hour), s.signer)).str("id")
	userBefore, _ := s.balance(s.userKey, "USD")
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[string]int{}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := servers[i%len(servers)].acp("POST", s.sessions(s.merch)+"/"+id+"/complete", s.agentKey, fmt.Sprint("k", i), completeBody(tok), "", nil)
			mu.Lock()
			out[fmt.Sprint(r.status, " ", r.str("status")+r.str("code"))]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v", out)
	if out["200 completed"] != 1 || out["409 checkout_session_state"] != 19 {
		t.Fatalf("outcomes %v; want one completion and 19 checkout_session_state", out)
	}
	if avail, _ := s.balance(s.userKey, "USD"); avail != userBefore-1200 {
		t.Fatalf("user paid %d, want 1200 once", userBefore-avail)
	}
	s.verify()
}

// acpExamples reads an examples file of internal/acp/testdata.
func acpExamples(t *testing.T, file string) map[string]map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../internal/acp/testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestACPExamples replays the examples of examples.agentic_checkout.json
// and examples.delegate_payment.json that apply to Paybound, their
// merchant-specific values (item IDs, option IDs, tokens, card numbers)
// replaced with this server's, each request and response validated
// against ACP's schemas. An example of what Paybound does not offer (a
// seller-backed saved card) is refused with a precise error; the error
// examples are matched by type and code.
func TestACPExamples(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	ex := acpExamples(t, "examples.agentic_checkout.json")
	dx := acpExamples(t, "examples.delegate_payment.json")
	// A shipped mug where the example has an address, else a digital tea.
	open := func(name string) resp {
		body := ex[name]
		product, price := s.tea, int64(1200)
		if body["fulfillment_details"] != nil {
			product, price = s.mug, 2500
		}
		for _, it := range body["line_items"].([]any) {
			it.(map[string]any)["id"] = product
		}
		r := s.ok(201, s.acp("POST", s.sessions(s.merch), s.agentKey, name+fmt.Sprint(s.seq.Add(1)), body, "checkout:CheckoutSessionCreateRequest", nil))
		if r.str("status") != "ready_for_payment" || total(r) != price {
			t.Fatalf("%s: %s", name, r.raw)
		}
		return r
	}
	c := open("create_checkout_session_request")
	open("create_checkout_session_request_with_first_touch_attribution")
	id := c.str("id")
	path := s.sessions(s.merch) + "/" + id

	upd := ex["update_checkout_session_request"]
	sel := upd["selected_fulfillment_options"].([]any)[0].(map[string]any)
	opt := c.body["fulfillment_options"].([]any)[0].(map[string]any)
	line := c.body["line_items"].([]any)[0].(map[string]any)
	sel["option_id"], sel["item_ids"] = opt["id"], []string{line["id"].(string)}
	s.ok(200, s.acp("POST", path, s.agentKey, "u", upd, "checkout:CheckoutSessionUpdateRequest", nil))

	delegated := func(session string) string {
		d := dx["delegate_payment_request"]
		pm, al := d["payment_method"].(map[string]any), d["allowance"].(map[string]any)
		pm["number"], pm["exp_month"], pm["exp_year"], pm["display_last4"] = s.cardNo, s.card.str("exp_month"), s.card.str("exp_year"), s.cardLast
		al["checkout_session_id"], al["merchant_id"], al["expires_at"] = session, s.merch, s.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		al["max_amount"] = 2500
		raw, _ := json.Marshal(d)
		ts := s.clock.Now().UTC().Format(time.RFC3339)
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(s.signer.key, append([]byte(ts+"."), raw...)))
		r := s.ok(201, s.acp("POST", "/agentic_commerce/delegate_payment", s.agentKey, "d"+session, json.RawMessage(raw),
			"delegate:DelegatePaymentRequest", map[string]string{"Timestamp": ts, "Signature": sig}))
		if md := r.body["metadata"].(map[string]any); md["campaign"] != "q4" || md["merchant_id"] != s.merch {
			t.Fatalf("delegate metadata: %s", r.raw)
		}
		return r.str("id")
	}
	completeWith := func(name, session string) resp {
		body := ex[name]
		pd := body["payment_data"].(map[string]any)
		if pd["handler_id"] == "card_tokenized" {
			pd["handler_id"] = checkout.HandlerID
			pd["instrument"].(map[string]any)["credential"].(map[string]any)["token"] = delegated(session)
		}
		return s.acp("POST", s.sessions(s.merch)+"/"+session+"/complete", s.agentKey, "k"+session, body, "checkout:CheckoutSessionCompleteRequest", nil)
	}
	if r := s.ok(200, completeWith("complete_checkout_session_request", id)); r.str("status") != "completed" {
		t.Fatalf("complete: %s", r.raw)
	}
	for _, name := range []string{"complete_checkout_session_request_with_last_touch_attribution", "complete_session_with_authentication_result_request"} {
		if r := s.ok(200, completeWith(name, open("create_checkout_session_request").str("id"))); r.str("status") != "completed" {
			t.Fatalf("%s: %s", name, r.raw)
		}
	}
	if r := completeWith("complete_checkout_session_request_seller_backed", open("create_checkout_session_request").str("id")); r.status != 400 || r.acpCode() != "parameter_invalid $.payment_data.handler_id" {
		t.Fatalf("seller-backed card: %d %s", r.status, r.raw)
	}
	for _, name := range []string{"cancel_checkout_session_request", "cancel_checkout_session_request_timing_deferred"} {
		sid := open("create_checkout_session_request").str("id")
		if r := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+sid+"/cancel", s.agentKey, "x"+sid, ex[name], "checkout:CancelSessionRequest", nil)); r.str("status") != "canceled" {
			t.Fatalf("%s: %s", name, r.raw)
		}
		if r := s.acp("POST", s.sessions(s.merch)+"/"+sid+"/cancel", s.agentKey, "y"+sid, ex[name], "", nil); r.status != 405 || r.str("code") != "checkout_session_state" {
			t.Fatalf("cancel twice: %d %s", r.status, r.raw)
		}
	}
	// The error examples, by type and code.
	errs := map[string]resp{
		"error_400_idempotency_key_required": s.acp("POST", path, s.agentKey, "", map[string]any{}, "", map[string]string{"Idempotency-Key": ""}),
		"error_422_idempotency_conflict":     s.acp("POST", path, s.agentKey, "u", map[string]any{}, "", nil),
	}
	sid := open("create_checkout_session_request").str("id")
	dErrs := map[string]resp{
		"delegate_payment_error_invalid_card":             s.delegate(s.agentKey, "e1", checkout.CardIIN+"0000000000000", sid, s.merch, 100, s.clock.Now().Add(time.Hour), s.signer),
		"delegate_payment_error_idempotency_key_required": s.acp("POST", "/agentic_commerce/delegate_payment", s.agentKey, "", map[string]any{}, "", map[string]string{"Idempotency-Key": ""}),
		"delegate_payment_error_idempotency_conflict":     s.delegate(s.agentKey, "e1", s.cardNo, sid, s.merch, 100, s.clock.Now().Add(time.Hour), s.signer),
	}
	for examples, got := range map[*map[string]map[string]any]map[string]resp{&ex: errs, &dx: dErrs} {
		for name, r := range got {
			want := (*examples)[name]
			if r.str("type") != want["type"] || r.str("code") != want["code"] {
				t.Errorf("%s: %s; the example is %v", name, r.raw, want)
			}
		}
	}
	s.verify()
}

// TestCLICheckout: products create, list and archive, and mandates card,
// through the client commands.
func TestCLICheckout(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	out, errOut, err := w.cli(w.merchKey, "products", "create", "--name", "Green tea", "--price", "12.50", "--currency", "USD",
		"--fulfillment", "digital", "--sku", "TEA-1", "--json")
	var p struct {
		ID    string `json:"id"`
		Price int64  `json:"price"`
	}
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p.Price != 1250 {
		t.Fatalf("products create: %q %q %v", out, errOut, err)
	}
	if out, _, err = w.cli(w.agentKey, "product", "list", "--merchant", w.merch); err != nil || !strings.Contains(out, p.ID+"  12.50 USD  digital  TEA-1  Green tea") {
		t.Fatalf("products list: %q %v", out, err)
	}
	if out, _, err = w.cli(w.merchKey, "products", "archive", p.ID); err != nil || !strings.Contains(out, "(archived)") {
		t.Fatalf("products archive: %q %v", out, err)
	}
	if out, _, err = w.cli(w.agentKey, "products", "list", "--merchant", w.merch); err != nil || strings.Contains(out, p.ID) {
		t.Fatalf("an archived product is listed: %q %v", out, err)
	}
	if _, errOut, err = w.cli(w.merchKey, "products", "create", "--name", "x", "--price", "1", "--currency", "USD", "--fulfillment", "teleport"); err == nil || !strings.Contains(errOut, "parameter_invalid") {
		t.Fatalf("a bad fulfillment: %q %v", errOut, err)
	}
	m := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "tea",
		"currency": "USD", "max_amount": 1000, "budget": map[string]any{"amount": 1000, "period": "week"}})).str("id")
	out, errOut, err = w.cli(w.userKey, "mandate", "card", m)
	if err != nil || !strings.Contains(out, "number") || !strings.Contains(out, checkout.CardIIN) || !strings.Contains(out, "shown once") {
		t.Fatalf("mandates card: %q %q %v", out, errOut, err)
	}
}

// TestProductsOverHTTP: the catalog's routes, and their refusals.
func TestProductsOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	p := w.ok(201, w.call("POST", "/v1/products", w.merchKey, "", map[string]any{"name": "Tea", "price": 1200, "currency": "USD", "fulfillment": "digital"}))
	id := p.str("id")
	if p.str("object") != "product" || p.str("merchant_id") != w.merch || p.body["active"] != true || p.str("sku") != "" {
		t.Fatalf("create: %s", p.raw)
	}
	u := w.ok(200, w.call("POST", "/v1/products/"+id, w.merchKey, "", map[string]any{"price": 1300, "sku": "T-2"}))
	if u.num("price") != 1300 || u.str("sku") != "T-2" || u.str("name") != "Tea" {
		t.Fatalf("update: %s", u.raw)
	}
	for _, c := range []struct {
		method, path, key string
		body              any
		status            int
		code, param       string
	}{
		{"POST", "/v1/products", w.agentKey, map[string]any{"name": "x", "price": 1, "currency": "USD", "fulfillment": "digital"}, 403, "forbidden", ""},
		{"POST", "/v1/products", w.merchKey, map[string]any{"price": 1, "currency": "USD", "fulfillment": "digital"}, 400, "parameter_missing", "name"},
		{"POST", "/v1/products", w.merchKey, map[string]any{"name": "x", "price": 0, "currency": "USD", "fulfillment": "digital"}, 400, "invalid_amount", "price"},
		{"POST", "/v1/products", w.merchKey, map[string]any{"name": "x", "price": 1, "currency": "usd", "fulfillment": "digital"}, 400, "invalid_currency", "currency"},
		{"POST", "/v1/products", w.merchKey, map[string]any{"name": "x", "price": 1, "currency": "USD", "fulfillment": "drone"}, 400, "parameter_invalid", "fulfillment"},
		{"POST", "/v1/products", w.merchKey, map[string]any{"name": "x", "price": 1, "currency": "USD", "fulfillment": "digital", "colour": "red"}, 400, "unknown_field", "colour"},
		{"POST", "/v1/products/" + id, w.merchKey, map[string]any{"currency": "EUR"}, 400, "parameter_invalid", "currency"},
		{"POST", "/v1/products/" + id, w.merch2Key, map[string]any{"price": 1}, 404, "resource_missing", "id"},
		{"POST", "/v1/products/prod_nope", w.merchKey, map[string]any{"price": 1}, 404, "resource_missing", "id"},
		{"GET", "/v1/products", w.agentKey, nil, 400, "parameter_missing", "merchant_id"},
		{"GET", "/v1/products?merchant_id=" + w.merch2, w.merchKey, nil, 403, "forbidden", "merchant_id"},
	} {
		r := w.call(c.method, c.path, c.key, "", c.body)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("%s %s %v: %d %s; want %d %s %s", c.method, c.path, c.body, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	if g := w.ok(200, w.call("GET", "/v1/products/"+id, w.agentKey, "", nil)); g.num("price") != 1300 {
		t.Fatalf("a refused request changed the product: %s", g.raw)
	}
	w.ok(200, w.call("POST", "/v1/products/"+id+"/archive", w.merchKey, "", nil))
	if r := w.call("POST", "/v1/products/"+id, w.merchKey, "", map[string]any{"price": 1}); r.status != 409 || r.errField("code") != "product_archived" {
		t.Fatalf("update of an archived product: %d %s", r.status, r.raw)
	}
	if r := w.call("GET", "/v1/products/"+id, w.agentKey, "", nil); r.status != 404 {
		t.Fatalf("an agent sees an archived product: %d %s", r.status, r.raw)
	}
	l := w.ok(200, w.call("GET", "/v1/products?archived=true", w.merchKey, "", nil))
	if len(l.body["data"].([]any)) != 1 {
		t.Fatalf("the merchant's archived products: %s", l.raw)
	}
}

// TestACPSignedAgent: an agent that signs its requests (RFC 9421) instead
// of sending its key uses ACP as with a bearer key; a tampered body is
// refused.
func TestACPSignedAgent(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	body, _ := json.Marshal(map[string]any{"currency": "usd", "line_items": []any{map[string]any{"id": s.tea}}, "capabilities": map[string]any{}})
	req := s.signer.signed(t, "POST", s.base+s.sessions(s.merch), body, "signed-1", s.clock.Now(), nil)
	req.Header.Set("API-Version", checkout.ACPVersion)
	r := send(t, req)
	if r.status != 201 || r.str("status") != "ready_for_payment" || r.body["metadata"].(map[string]any)["agent_id"] != s.agent {
		t.Fatalf("signed create: %d %s", r.status, r.raw)
	}
	validateACP(t, "checkout:CheckoutSession", r.raw)
	req = s.signer.signed(t, "POST", s.base+s.sessions(s.merch), body, "signed-2", s.clock.Now(), nil)
	req.Header.Set("API-Version", checkout.ACPVersion)
	tampered := bytes.Replace(body, []byte(`"usd"`), []byte(`"eur"`), 1)
	req.Body, req.ContentLength, req.GetBody = io.NopCloser(bytes.NewReader(tampered)), int64(len(tampered)), nil
	if r := send(t, req); r.status != 401 || r.str("code") != "digest_mismatch" {
		t.Fatalf("tampered signed create: %d %s", r.status, r.raw)
	}
	// delegate_payment as a signed request: ACP's Signature and Timestamp
	// cannot travel beside RFC 9421's Signature, and are not needed.
	sid := r.str("id")
	dbody, _ := json.Marshal(map[string]any{
		"payment_method": map[string]any{"type": "card", "card_number_type": "fpan", "number": s.cardNo, "exp_month": s.card.str("exp_month"),
			"exp_year": s.card.str("exp_year"), "display_card_funding_type": "credit", "display_last4": s.cardLast, "metadata": map[string]string{}},
		"allowance": map[string]any{"reason": "one_time", "max_amount": 1200, "currency": "usd", "checkout_session_id": sid,
			"merchant_id": s.merch, "expires_at": s.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
		"risk_signals": []any{}, "metadata": map[string]string{},
	})
	req = s.signer.signed(t, "POST", s.base+"/agentic_commerce/delegate_payment", dbody, "signed-d1", s.clock.Now(), nil)
	req.Header.Set("API-Version", checkout.ACPVersion)
	if r := send(t, req); r.status != 201 || !strings.HasPrefix(r.str("id"), "vt_") {
		t.Fatalf("signed delegate_payment: %d %s", r.status, r.raw)
	} else {
		validateACP(t, "delegate:DelegatePaymentResponse", r.raw)
	}
	req = s.signer.signed(t, "POST", s.base+"/agentic_commerce/delegate_payment", dbody, "signed-d2", s.clock.Now(), nil)
	req.Header.Set("API-Version", checkout.ACPVersion)
	tampered = bytes.Replace(dbody, []byte(`"max_amount":1200`), []byte(`"max_amount":9999`), 1)
	req.Body, req.ContentLength, req.GetBody = io.NopCloser(bytes.NewReader(tampered)), int64(len(tampered)), nil
	if r := send(t, req); r.status != 401 || r.str("code") != "digest_mismatch" {
		t.Fatalf("tampered signed delegate_payment: %d %s", r.status, r.raw)
	}
	// A session has at most twenty payment tokens (one is taken).
	for i := range 19 {
		s.ok(201, s.delegate(s.agentKey, fmt.Sprint("t", i), s.cardNo, sid, s.merch, 1200, s.clock.Now().Add(time.Hour), s.signer))
	}
	if r := s.delegate(s.agentKey, "t20", s.cardNo, sid, s.merch, 1200, s.clock.Now().Add(time.Hour), s.signer); r.status != 400 || r.acpCode() != "invalid_card $.allowance.checkout_session_id" {
		t.Fatalf("a 21st token: %d %s", r.status, r.raw)
	}
	// A mandate has at most ten cards: the shop issued one.
	for range 9 {
		s.ok(201, s.call("POST", "/v1/mandates/"+s.mandate+"/card", s.userKey, "", nil))
	}
	if r := s.call("POST", "/v1/mandates/"+s.mandate+"/card", s.userKey, "", nil); r.status != 409 || r.errField("code") != "agent_card_limit" {
		t.Fatalf("an eleventh card: %d %s", r.status, r.raw)
	}
}

// TestACPTwoProcessesOnePostgres: two servers on one PostgreSQL database
// receive completes of one session at once; the session is paid once (the
// completion's unique keys refuse the second batch, computed again).
func TestACPTwoProcessesOnePostgres(t *testing.T) {
	t.Parallel()
	db := storetest.PostgresURL(t)
	s := newShopDB(t, db)
	m2 := secondMain(t, s.m, func(m *Main) { m.Clock = s.clock })
	hammerComplete(t, s, s, &acpShop{world: &world{api: &api{t: t, base: m2.URL()}}, clock: s.clock})
}
