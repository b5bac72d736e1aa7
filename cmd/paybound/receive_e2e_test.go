package main

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/whsig"
)

// TestReceivePayments is issue 15's proof, over the real server: an agent
// under a mandate buys two products through ACP (create, update,
// delegate_payment with its agent card, complete); the merchant's receiver
// verifies every webhook and the agent platform's ACP receiver every order
// event; the merchant refunds one item; and the settlement report balances
// against the merchant's ledger balance.
func TestReceivePayments(t *testing.T) {
	t.Parallel()
	s := newShopWith(t, fastHooks)
	shop, platform := newReceiver(t), newReceiver(t)
	_, shopSecret := s.endpoint(s.merchKey, shop.srv.URL, "*")
	acpEP := s.ok(201, s.call("POST", "/v1/webhook_endpoints", s.agentKey, "", map[string]any{"url": platform.srv.URL,
		"events": []string{"*"}, "format": "acp"}))
	start := s.clock.Now().Add(-time.Minute)
	userBefore, _ := s.balance(s.userKey, "USD")

	c := s.ok(201, s.acp("POST", s.sessions(s.merch), s.agentKey, "c1", map[string]any{"currency": "usd",
		"line_items": []any{map[string]any{"id": s.tea}}, "capabilities": map[string]any{}}, "checkout:CheckoutSessionCreateRequest", nil))
	id := c.str("id")
	u := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id, s.agentKey, "u1", map[string]any{
		"line_items": []any{map[string]any{"id": s.tea}, map[string]any{"id": s.mug}}, "fulfillment_details": shipTo},
		"checkout:CheckoutSessionUpdateRequest", nil))
	if u.str("status") != "ready_for_payment" || total(u) != 3700 {
		t.Fatalf("update: %s", u.raw)
	}
	tok := s.ok(201, s.delegate(s.agentKey, "d1", s.cardNo, id, s.merch, 3700, s.clock.Now().Add(time.Hour), s.signer))
	done := s.ok(200, s.acp("POST", s.sessions(s.merch)+"/"+id+"/complete", s.agentKey, "k1", completeBody(tok.str("id")),
		"checkout:CheckoutSessionCompleteRequest", nil))
	meta, _ := done.body["metadata"].(map[string]any)
	payID, _ := meta["payment_id"].(string)
	if done.str("status") != "completed" || payID == "" {
		t.Fatalf("complete: %s", done.raw)
	}
	if p := s.ok(200, s.call("GET", "/v1/payments/"+payID, s.merchKey, "", nil)); p.str("status") != "captured" || p.num("amount") != 3700 {
		t.Fatalf("the merchant's view of the payment: %s", p.raw)
	}
	// The merchant refunds the mug.
	re := s.ok(201, s.call("POST", "/v1/payments/"+payID+"/refunds", s.merchKey, "", map[string]any{"amount": 2500, "reason": "broken mug"}))
	if re.str("status") != "succeeded" {
		t.Fatalf("refund: %s", re.raw)
	}

	// The merchant's webhooks: the payment's authorization and capture, the
	// session's completion, the refund and the order's update, each verified.
	want := []string{"payment.authorized", "payment.captured", "checkout_session.completed", "refund.succeeded", "checkout_session.order_updated"}
	ds := shop.wait(t, "the merchant's events", 20*time.Second, func(ds []delivery) bool {
		got := types(ds)
		for _, w := range want {
			if got[w] == 0 {
				return false
			}
		}
		return true
	})
	verifyAll(t, s.world, ds, shopSecret)
	seen := map[string]string{}
	for _, d := range ds {
		if prev, ok := seen[d.event.ID]; ok && prev != d.Body {
			t.Errorf("event %s delivered twice with different bodies", d.event.ID)
		}
		seen[d.event.ID] = d.Body
		switch d.event.Type {
		case "checkout_session.completed", "checkout_session.order_updated":
			if d.event.Data.Object["id"] != id {
				t.Errorf("%s is about %v, want the session %s", d.event.Type, d.event.Data.Object["id"], id)
			}
		case "refund.succeeded":
			if d.event.Data.Object["id"] != re.str("id") || d.event.Data.Object["amount"] != float64(2500) {
				t.Errorf("refund.succeeded: %v", d.event.Data.Object)
			}
		}
	}

	// The agent platform's ACP endpoint: order_create and order_update,
	// each ACP's WebhookEvent signed with Merchant-Signature.
	acpSecret := acpEP.str("secret")
	pds := platform.wait(t, "the platform's ACP events", 20*time.Second, func(ds []delivery) bool { return len(ds) >= 2 })
	var acpTypes []string
	for _, d := range pds {
		if err := whsig.VerifyACP(d.Headers["merchant-signature"], acpSecret, []byte(d.Body), time.Now()); err != nil {
			t.Errorf("Merchant-Signature of %s: %v", d.Body, err)
		}
		var ev map[string]json.RawMessage
		if err := json.Unmarshal([]byte(d.Body), &ev); err != nil || len(ev) != 2 || ev["type"] == nil || ev["data"] == nil {
			t.Fatalf("an ACP event is {type, data} only: %s", d.Body)
		}
		var typ string
		json.Unmarshal(ev["type"], &typ)
		acpTypes = append(acpTypes, typ)
		validateACP(t, "checkout:Order", ev["data"])
		var order struct {
			Type              string `json:"type"`
			CheckoutSessionID string `json:"checkout_session_id"`
			PermalinkURL      string `json:"permalink_url"`
			Status            string `json:"status"`
		}
		json.Unmarshal(ev["data"], &order)
		if order.Type != "order" || order.CheckoutSessionID != id || order.PermalinkURL == "" || order.Status == "" {
			t.Errorf("ACP event data lacks what EventDataOrder requires: %s", ev["data"])
		}
	}
	// Order is not promised (docs/webhooks.md): both, once each.
	slices.Sort(acpTypes)
	if strings.Join(acpTypes, " ") != "order_create order_update" {
		t.Errorf("the platform's ACP events: %v, want order_create and order_update", acpTypes)
	}

	// The settlement report balances against the merchant's ledger balance.
	q := url.Values{"from": {start.Format(time.RFC3339)}, "to": {s.clock.Now().Add(time.Minute).Format(time.RFC3339)}, "format": {"json"}}
	rep := s.ok(200, s.call("GET", "/v1/reports/settlement?"+q.Encode(), s.merchKey, "", nil))
	var report struct {
		Summary []struct {
			Currency string `json:"currency"`
			Captures int64  `json:"captures"`
			Refunds  int64  `json:"refunds"`
			Fees     int64  `json:"fees"`
			Net      int64  `json:"net"`
		} `json:"summary"`
		Rows []struct {
			Type      string `json:"type"`
			Amount    int64  `json:"amount"`
			PaymentID string `json:"payment_id"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(rep.raw, &report); err != nil || len(report.Summary) != 1 {
		t.Fatalf("report: %v: %s", err, rep.raw)
	}
	avail, pending := s.balance(s.merchKey, "USD")
	sum := report.Summary[0]
	if sum.Currency != "USD" || sum.Net != avail+pending || sum.Net != 3700-2500-sum.Fees || sum.Captures != 3700 {
		t.Fatalf("report summary %+v; the merchant's balance is %d (+%d pending)", sum, avail, pending)
	}
	var net int64
	for _, r := range report.Rows {
		if r.PaymentID != payID {
			t.Errorf("a row of another payment: %+v", r)
		}
		net += r.Amount
	}
	if net != sum.Net {
		t.Errorf("the rows sum to %d, the summary says %d", net, sum.Net)
	}
	if after, _ := s.balance(s.userKey, "USD"); after != userBefore-1200 {
		t.Errorf("the user paid %d, want 1200 (3700 less the 2500 refunded)", userBefore-after)
	}
	s.verify()
}
