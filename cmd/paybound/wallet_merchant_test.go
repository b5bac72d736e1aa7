package main

import (
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestWalletPayLink: a person lands on a payment link's wallet page,
// signs in and comes back to it, and pays from their wallet; the form
// submitted twice pays once; a used-up link is refused and moves nothing.
func TestWalletPayLink(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	l := w.ok(201, w.call("POST", "/v1/payment_links", w.merchKey, "", map[string]any{"amount": 1250, "currency": "USD",
		"description": "Breakfast set", "max_uses": 1}))
	id := l.str("id")
	b := newBrowser(t, w.m.URL())
	lp := b.get("/wallet/pay/" + id)
	wantStatus(t, "landing, signed out", lp, 200, "Breakfast set")
	if !strings.Contains(lp.body, "12.50 USD") || !strings.Contains(lp.body, "/wallet/signin?next=%2fwallet%2fpay%2f"+id) {
		t.Fatalf("landing: %.2000s", lp.body)
	}
	wantStatus(t, "unknown link", b.get("/wallet/pay/plink_00000000000000000000000000"), 404, "")
	// Paying needs a session.
	if r := b.form("/wallet/pay/"+id, url.Values{"idem": {"x"}}); r.status != 401 {
		t.Fatalf("pay signed out: %d", r.status)
	}
	// Sign in and come back.
	b.get("/wallet/signin?next=/wallet/pay/" + id)
	r := b.form("/wallet/signin", url.Values{"api_key": {w.userKey}, "next": {"/wallet/pay/" + id}})
	if r.status != 303 || r.header.Get("Location") != "/wallet/pay/"+id {
		t.Fatalf("sign-in back to the link: %d %v", r.status, r.header.Get("Location"))
	}
	lp = b.get("/wallet/pay/" + id)
	wantStatus(t, "landing, signed in", lp, 200, "Pay 12.50 USD from my wallet")
	avail, _ := w.balance(w.userKey, "USD")
	var pid string
	for range 2 {
		r := b.form("/wallet/pay/"+id, url.Values{"idem": {"pay-1"}})
		if r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/wallet/payments/pay_") {
			t.Fatalf("pay: %d %v %.500s", r.status, r.header, r.body)
		}
		pid = strings.TrimSuffix(strings.TrimPrefix(r.header.Get("Location"), "/wallet/payments/"), "?done=paid")
	}
	if a, _ := w.balance(w.userKey, "USD"); a != avail-1250 {
		t.Fatalf("available %d, want %d", a, avail-1250)
	}
	if p := w.ok(200, w.call("GET", "/v1/payments/"+pid, w.userKey, "", nil)); p.str("status") != "captured" || p.str("merchant_id") != w.merch {
		t.Fatalf("payment: %s", p.raw)
	}
	wantStatus(t, "paid page", b.get("/wallet/payments/"+pid+"?done=paid"), 200, "Paid.")
	// Used up: the page says so, and paying is refused.
	wantStatus(t, "used up", b.get("/wallet/pay/"+id), 200, "it is used_up")
	wantStatus(t, "pay used up", b.form("/wallet/pay/"+id, url.Values{"idem": {"pay-2"}}), 409, "")
	if a, _ := w.balance(w.userKey, "USD"); a != avail-1250 {
		t.Fatalf("a refused payment moved money: %d", a)
	}
	w.verify()
}

// TestWalletMerchantPages: the merchant sees its payments, refunds from
// the payment page, sees its webhook endpoints with their deliveries,
// the disputes against it and downloads its settlement report; a person
// reaches none of the merchant pages, and another merchant sees none of
// it.
func TestWalletMerchantPages(t *testing.T) {
	t.Parallel()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer sink.Close()
	w := newWalletWorld(t, fastHooks)
	we, _ := w.endpoint(w.merchKey, sink.URL+"/hook", "*")
	// A dispute against the cafe.
	w.ok(201, w.call("POST", "/v1/payments/"+w.adaPay+"/disputes", w.userKey, "", map[string]any{"reason": "merchant_error"}))
	cafe, other, ada := newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL())
	cafe.signIn(w.merchKey)
	other.signIn(w.merch2Key)
	ada.signIn(w.userKey)

	wantStatus(t, "merchant activity", cafe.get("/wallet/activity"), 200, w.adaPay)
	wantStatus(t, "disputes", cafe.get("/wallet/disputes"), 200, "merchant_error")
	wh := cafe.get("/wallet/webhooks")
	wantStatus(t, "webhooks", wh, 200, we)
	if r := cafe.form("/wallet/webhooks/"+we+"/test", url.Values{"idem": {"t1"}}); r.status != 303 {
		t.Fatalf("test event: %d %.500s", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := cafe.get("/wallet/webhooks/" + we)
		if strings.Contains(d.body, "succeeded") || strings.Contains(d.body, "delivered") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery shown: %.3000s", d.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := cafe.get("/wallet/settlement")
	wantStatus(t, "settlement", s, 200, `<a href="/wallet/settlement.csv?from=`)
	c := cafe.get("/wallet/settlement.csv")
	if c.status != 200 || !strings.Contains(c.header.Get("Content-Disposition"), "settlement_"+w.merch) {
		t.Fatalf("settlement csv: %d %v", c.status, c.header)
	}
	rows, err := csv.NewReader(strings.NewReader(c.body)).ReadAll()
	if err != nil || len(rows) < 2 || !strings.Contains(c.body, w.adaPay) {
		t.Fatalf("settlement rows: %v %q", err, c.body)
	}
	wantStatus(t, "bad date", cafe.get("/wallet/settlement?from=soon"), 400, "from must be a date")

	// Another merchant: none of it.
	for _, path := range []string{"/wallet/activity", "/wallet/disputes", "/wallet/webhooks", "/wallet/settlement", "/wallet/settlement.csv"} {
		if body := other.get(path).body; strings.Contains(body, w.adaPay) || strings.Contains(body, we) {
			t.Errorf("the other merchant sees the cafe's data on %s", path)
		}
	}
	wantStatus(t, "another's endpoint", other.get("/wallet/webhooks/"+we), 404, "")
	if r := other.form("/wallet/webhooks/"+we+"/test", url.Values{"idem": {"t2"}}); r.status != 404 {
		t.Errorf("the other merchant tested the cafe's endpoint: %d", r.status)
	}
	// A person: no merchant pages.
	for _, path := range []string{"/wallet/webhooks", "/wallet/settlement", "/wallet/settlement.csv", "/wallet/webhooks/" + we} {
		if r := ada.get(path); r.status != 403 || strings.Contains(r.body, we) {
			t.Errorf("a person on %s: %d", path, r.status)
		}
	}
	// And merchants have no person's pages.
	for _, path := range []string{"/wallet/approvals", "/wallet/mandates", "/wallet/agents", "/wallet/passkeys"} {
		if r := cafe.get(path); r.status != 403 {
			t.Errorf("a merchant on %s: %d", path, r.status)
		}
	}
	w.verify()
}
