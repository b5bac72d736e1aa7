package main

import (
	"context"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestPaymentLinkUseGivenBack: a link payment that waits for its user's
// confirmation takes the link's one use; the user's denial, the
// confirmation's expiry or a cancel gives it back in the same operation,
// and the link can be paid again. A payment that merely names the link in its metadata
// gives nothing back.
func TestPaymentLinkUseGivenBack(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	newLink := func(uses int) string {
		return w.ok(201, w.call("POST", "/v1/payment_links", w.merchKey, "", map[string]any{"amount": 500, "currency": "USD",
			"description": "one ticket", "max_uses": uses})).str("id")
	}
	uses := func(id string) int64 {
		return w.ok(200, w.call("GET", "/v1/payment_links/"+id, w.merchKey, "", nil)).num("uses")
	}
	// pending: the agent pays without a mandate, which its user must confirm.
	pending := func(id string) (cfm string) {
		p := w.ok(201, w.call("POST", "/v1/payment_links/"+id+"/payments", w.agentKey, "", nil))
		if p.str("status") != "requires_confirmation" {
			t.Fatalf("an agent's link payment without a mandate: %s", p.raw)
		}
		return p.body["confirmation"].(map[string]any)["id"].(string)
	}
	usedUp := func(id string) {
		if r := w.call("POST", "/v1/payment_links/"+id+"/payments", w.userKey, "", nil); r.status != 409 || r.errField("code") != "payment_link_used_up" {
			t.Fatalf("a second payment of a used link: %d %s", r.status, r.raw)
		}
	}
	payable := func(id string) {
		if p := w.ok(201, w.call("POST", "/v1/payment_links/"+id+"/payments", w.userKey, "", nil)); p.str("status") != "captured" {
			t.Fatalf("paying the link again: %s", p.raw)
		}
	}

	denied := newLink(1)
	cfm := pending(denied)
	if uses(denied) != 1 {
		t.Fatal("a waiting payment took no use")
	}
	usedUp(denied)
	w.ok(200, w.call("POST", "/v1/confirmations/"+cfm+"/deny", w.userKey, "", nil))
	if got := uses(denied); got != 0 {
		t.Fatalf("uses after the denial: %v, want 0", got)
	}
	payable(denied)
	usedUp(denied)

	expired := newLink(1)
	pending(expired)
	clock.Advance(pb.ConfirmationTTL + time.Minute)
	if _, err := w.m.Service.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := uses(expired); got != 0 {
		t.Fatalf("uses after the expiry: %v, want 0", got)
	}
	payable(expired)

	canceled := newLink(1)
	pendingID := w.ok(201, w.call("POST", "/v1/payment_links/"+canceled+"/payments", w.agentKey, "", nil)).str("id")
	if st := w.ok(200, w.call("POST", "/v1/payments/"+pendingID+"/cancel", w.agentKey, "", nil)).str("status"); st != "canceled" {
		t.Fatalf("the agent's cancel of its waiting payment: %s", st)
	}
	if got := uses(canceled); got != 0 {
		t.Fatalf("uses after the cancel: %v, want 0", got)
	}
	payable(canceled)

	// A payment of the agent's own cannot name a link in its metadata: the
	// key is Paybound's, refused at the door.
	named := newLink(2)
	payable(named)
	r := w.call("POST", "/v1/payments", w.agentKey, "named", map[string]any{"amount": 500, "currency": "USD",
		"merchant_id": w.merch, "description": "x", "capture_method": "automatic", "metadata": map[string]string{pb.MetadataPayLink: named}})
	if r.status != 400 || r.errField("code") != "parameter_invalid" || r.errField("param") != "metadata."+pb.MetadataPayLink {
		t.Fatalf("a payment naming a link in its metadata: %d %s", r.status, r.raw)
	}
	if got := uses(named); got != 1 {
		t.Fatalf("a refused payment naming the link changed its uses: %v, want 1", got)
	}
	w.verify()
}
