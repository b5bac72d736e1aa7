package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/storetest"
)

// TestPaymentLinksOverHTTP: a merchant creates a link; an agent reads its
// JSON offer and pays it under a mandate, a user pays it with their own
// key, a browser gets its page; bad requests change nothing, and a
// deactivated or expired link takes no more payments.
func TestPaymentLinksOverHTTP(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	exp := clock.Now().Add(time.Hour).Format(time.RFC3339)
	body := map[string]any{"amount": 1250, "currency": "USD", "description": "Breakfast set <b>&</b> coffee", "max_uses": 5, "expires_at": exp}
	l := w.ok(201, w.call("POST", "/v1/payment_links", w.merchKey, "create-link-1", body))
	id := l.str("id")
	if !strings.HasPrefix(id, "plink_") || l.str("url") != w.m.URL()+"/l/"+id || l.body["active"] != true || l.num("uses") != 0 ||
		l.num("max_uses") != 5 || l.str("expires_at") != exp || l.str("merchant_id") != w.merch {
		t.Fatalf("link: %s", l.raw)
	}
	if again := w.ok(201, w.call("POST", "/v1/payment_links", w.merchKey, "create-link-1", body)); again.str("id") != id || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a retry made another link: %s", again.raw)
	}

	// Bad requests: each a precise code, and no link made.
	for _, c := range []struct {
		key         string
		body        any
		status      int
		code, param string
	}{
		{w.merchKey, map[string]any{"currency": "USD", "description": "x"}, 400, "parameter_missing", "amount"},
		{w.merchKey, map[string]any{"amount": 0, "currency": "USD", "description": "x"}, 400, "invalid_amount", "amount"},
		{w.merchKey, map[string]any{"amount": 100, "currency": "XXX", "description": "x"}, 400, "invalid_currency", "currency"},
		{w.merchKey, map[string]any{"amount": 100, "currency": "USD"}, 400, "parameter_missing", "description"},
		{w.merchKey, map[string]any{"amount": 100, "currency": "USD", "description": "x", "max_uses": 0}, 400, "parameter_invalid", "max_uses"},
		{w.merchKey, map[string]any{"amount": 100, "currency": "USD", "description": "x", "expires_at": clock.Now().Add(-time.Minute).Format(time.RFC3339)}, 400, "parameter_invalid", "expires_at"},
		{w.merchKey, map[string]any{"amount": 100, "currency": "USD", "description": "x", "expires_at": "tomorrow"}, 400, "parameter_invalid", "expires_at"},
		{w.merchKey, map[string]any{"amount": 100, "currency": "USD", "description": "x", "color": "red"}, 400, "unknown_field", "color"},
		{w.userKey, map[string]any{"amount": 100, "currency": "USD", "description": "x"}, 403, "forbidden", ""},
	} {
		r := w.call("POST", "/v1/payment_links", c.key, "", c.body)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("POST /v1/payment_links %v: %d %s, want %d %s (%s)", c.body, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	if ls := w.ok(200, w.call("GET", "/v1/payment_links", w.merchKey, "", nil)); len(ls.body["data"].([]any)) != 1 {
		t.Fatalf("links after the refused requests: %s", ls.raw)
	}
	if r := w.call("GET", "/v1/payment_links/"+id, w.merch2Key, "", nil); r.status != 404 {
		t.Fatalf("another merchant reads the link: %d %s", r.status, r.raw)
	}

	// An agent reads the offer, and pays it as it says, under a mandate.
	offer := w.get(t, "/l/"+id, "application/json")
	var o struct {
		ID, Status, Currency, Description, MerchantName string
		Amount                                          int64
		UsesLeft                                        *int64 `json:"uses_left"`
		MerchantID                                      string `json:"merchant_id"`
		Pay                                             struct{ Method, URL string }
	}
	offer.decode(t, &o)
	o.MerchantName = offer.field("merchant_name")
	if offer.status != 200 || !strings.HasPrefix(offer.header.Get("Content-Type"), "application/json") || o.ID != id || o.Status != "open" ||
		o.Amount != 1250 || o.Currency != "USD" || o.MerchantID != w.merch || o.MerchantName != "Cafe" || o.UsesLeft == nil || *o.UsesLeft != 5 ||
		o.Pay.Method != "POST" || o.Pay.URL != w.m.URL()+"/v1/payment_links/"+id+"/payments" || offer.header.Get("Vary") != "Accept" {
		t.Fatalf("offer: %d %v %s", offer.status, offer.header, offer.raw)
	}
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "breakfast",
		"currency": "USD", "max_amount": 2000, "budget": map[string]any{"amount": 5000, "period": "week"}}))
	payPath := strings.TrimPrefix(o.Pay.URL, w.m.URL())
	p := w.ok(201, w.call(o.Pay.Method, payPath, w.agentKey, "agent-pays-1", map[string]any{"mandate_id": mdt.str("id")}))
	meta, _ := p.body["metadata"].(map[string]any)
	if p.str("status") != "captured" || p.num("amount") != 1250 || p.str("merchant_id") != w.merch || p.str("agent_id") != w.agent ||
		p.str("mandate_id") != mdt.str("id") || meta["payment_link"] != id || p.str("description") != body["description"] {
		t.Fatalf("the agent's payment: %s", p.raw)
	}
	if again := w.ok(201, w.call(o.Pay.Method, payPath, w.agentKey, "agent-pays-1", map[string]any{"mandate_id": mdt.str("id")})); again.str("id") != p.str("id") {
		t.Fatalf("a retry paid again: %s", again.raw)
	}
	// The user pays it with their own key; an agent without a mandate waits
	// for its user.
	w.ok(201, w.call("POST", payPath, w.userKey, "", nil))
	if wait := w.ok(201, w.call("POST", payPath, w.agentKey, "", nil)); wait.str("status") != "requires_confirmation" {
		t.Fatalf("an agent's payment without a mandate: %s", wait.raw)
	}
	for _, c := range []struct {
		key, path   string
		body        any
		status      int
		code, param string
	}{
		{w.merchKey, payPath, nil, 403, "forbidden", ""},
		{w.agentKey, payPath, map[string]any{"mandate_id": "mdt_nope"}, 400, "parameter_invalid", "mandate_id"},
		{w.userKey, payPath, map[string]any{"mandate_id": mdt.str("id")}, 400, "parameter_invalid", "mandate_id"},
		{w.userKey, "/v1/payment_links/plink_00000000000000000000000000/payments", nil, 404, "resource_missing", "id"},
		{w.userKey, "/v1/payment_links/nonsense/payments", nil, 404, "resource_missing", "id"},
	} {
		r := w.call("POST", c.path, c.key, "", c.body)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("POST %s %v: %d %s, want %d %s (%s)", c.path, c.body, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	if av, _ := w.balance(w.userKey, "USD"); av != 50000-2*1250 { // the payment waiting for its user holds nothing yet
		t.Fatalf("the user has %d available after two payments of 1250", av)
	}
	got := w.ok(200, w.call("GET", "/v1/payment_links/"+id, w.merchKey, "", nil))
	if got.num("uses") != 3 {
		t.Fatalf("uses after three payments (one waiting for its user): %s", got.raw)
	}
	if ps := w.ok(200, w.call("GET", "/v1/payment_links/"+id+"/payments", w.merchKey, "", nil)); len(ps.body["data"].([]any)) != 3 {
		t.Fatalf("the link's payments: %s", ps.raw)
	}
	merchantBefore, _ := w.balance(w.merchKey, "USD")
	userBefore, _ := w.balance(w.userKey, "USD")
	if merchantBefore != 2*1250 {
		t.Fatalf("the merchant has %d, want two payments of 1250", merchantBefore)
	}

	// A browser gets the page: what it is, how to pay, nothing to run.
	page := w.get(t, "/l/"+id, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	csp := page.header.Get("Content-Security-Policy")
	html := string(page.raw)
	if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(html, "12.50 USD") || !strings.Contains(html, "Breakfast set &lt;b&gt;&amp;&lt;/b&gt; coffee") || strings.Contains(html, "<b>&</b>") ||
		!strings.Contains(html, "How to pay") || !strings.Contains(html, o.Pay.URL) || strings.Contains(html, "<script") {
		t.Fatalf("page: %d %v\n%s", page.status, page.header, html)
	}
	if curl := w.get(t, "/l/"+id, "*/*"); !strings.HasPrefix(curl.header.Get("Content-Type"), "text/html") {
		t.Fatalf("Accept */* got %s", curl.header.Get("Content-Type"))
	}

	// Deactivated: refused with a precise code, nothing moves.
	d := w.ok(200, w.call("POST", "/v1/payment_links/"+id+"/deactivate", w.merchKey, "", nil))
	if d.body["active"] != false || d.num("uses") != 3 {
		t.Fatalf("deactivated: %s", d.raw)
	}
	if r := w.call("POST", "/v1/payment_links/"+id+"/deactivate", w.merch2Key, "", nil); r.status != 404 {
		t.Fatalf("another merchant deactivates: %d %s", r.status, r.raw)
	}
	r := w.call("POST", payPath, w.userKey, "", nil)
	if r.status != 409 || r.errField("code") != "payment_link_inactive" || r.errField("payment_id") != "" {
		t.Fatalf("paying a deactivated link: %d %s", r.status, r.raw)
	}
	if st := w.get(t, "/l/"+id, "application/json").field("status"); st != "inactive" {
		t.Fatalf("offer of a deactivated link: %s", st)
	}
	if !strings.Contains(string(w.get(t, "/l/"+id, "text/html").raw), "deactivated") {
		t.Fatal("the page of a deactivated link does not say so")
	}

	// Expired: the same.
	short := w.ok(201, w.call("POST", "/v1/payment_links", w.merchKey, "", map[string]any{"amount": 300, "currency": "USD",
		"description": "tea", "expires_at": clock.Now().Add(time.Minute).Format(time.RFC3339)}))
	clock.Advance(2 * time.Minute)
	r = w.call("POST", "/v1/payment_links/"+short.str("id")+"/payments", w.userKey, "", nil)
	if r.status != 409 || r.errField("code") != "payment_link_expired" {
		t.Fatalf("paying an expired link: %d %s", r.status, r.raw)
	}
	if m, _ := w.balance(w.merchKey, "USD"); m != merchantBefore {
		t.Fatalf("the merchant's balance moved to %d on refused payments", m)
	}
	if u, _ := w.balance(w.userKey, "USD"); u != userBefore {
		t.Fatalf("the user's balance moved to %d on refused payments", u)
	}
	if got := w.ok(200, w.call("GET", "/v1/payment_links/"+id, w.merchKey, "", nil)); got.num("uses") != 3 {
		t.Fatalf("uses after refused payments: %s", got.raw)
	}
	if r := w.get(t, "/l/plink_00000000000000000000000000", "application/json"); r.status != 404 {
		t.Fatalf("an unknown link: %d", r.status)
	}
	// The merchant's report names the link of each capture made through it.
	q := url.Values{"from": {clock.Now().Add(-time.Hour).Format(time.RFC3339)}, "to": {clock.Now().Add(time.Minute).Format(time.RFC3339)}}
	rep := w.ok(200, w.call("GET", "/v1/reports/settlement?"+q.Encode(), w.merchKey, "", nil))
	linked := 0
	for _, row := range rep.body["rows"].([]any) {
		if r := row.(map[string]any); r["payment_link"] == id && r["type"] == "capture" && r["reference"] == id {
			linked++
		}
	}
	if linked != 2 {
		t.Fatalf("%d captures of the report name the link, want 2: %s", linked, rep.raw)
	}
	w.verify()
}

// TestPaymentLinkMaxUsesConcurrent: ten payers at once on a link of three
// uses make exactly three payments; the others are refused and pay
// nothing.
func TestPaymentLinkMaxUsesConcurrent(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	l := ticketLink(w)
	keys := fans(w, 10)
	statuses := rush(l, keys, w.api)
	paid := 0
	for i, r := range statuses {
		av, _ := w.balance(keys[i], "USD")
		switch {
		case r.status == 201 && r.str("status") == "captured":
			paid++
			if av != 300 {
				t.Errorf("payer %d paid and has %d, want 300", i, av)
			}
		case r.status == 409 && r.errField("code") == "payment_link_used_up":
			if av != 1000 {
				t.Errorf("payer %d was refused and has %d, want 1000", i, av)
			}
		default:
			t.Errorf("payer %d: %d %s", i, r.status, r.raw)
		}
	}
	if paid != 3 {
		t.Fatalf("%d payments on a link of 3 uses", paid)
	}
	if m, _ := w.balance(w.merchKey, "USD"); m != 3*700 {
		t.Fatalf("the merchant has %d, want %d", m, 3*700)
	}
	if got := w.ok(200, w.call("GET", "/v1/payment_links/"+l, w.merchKey, "", nil)); got.num("uses") != 3 {
		t.Fatalf("uses: %s", got.raw)
	}
	if o := w.get(t, "/l/"+l, "application/json"); o.field("status") != "used_up" {
		t.Fatalf("offer of a used-up link: %s", o.raw)
	}
	w.verify()
}

// TestPaymentLinksCLI: the links commands against the real server.
func TestPaymentLinksCLI(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	out, errOut, err := w.cli(w.merchKey, "links", "create", "--amount", "4.20", "--currency", "usd", "--description", "a pastry", "--max-uses", "1", "--json")
	var l struct{ ID, URL string }
	if err != nil || json.Unmarshal([]byte(out), &l) != nil || !strings.HasPrefix(l.ID, "plink_") {
		t.Fatalf("links create: %v %s %s", err, out, errOut)
	}
	out, errOut, err = w.cli("", "links", "offer", l.ID)
	if err != nil || !strings.Contains(out, "4.20 USD to Cafe") || !strings.Contains(out, "open") || !strings.Contains(out, "/v1/payment_links/"+l.ID+"/payments") {
		t.Fatalf("links offer: %v %s %s", err, out, errOut)
	}
	if out, errOut, err = w.cli(w.userKey, "links", "pay", l.ID); err != nil || !strings.Contains(out, "captured 4.20 USD") {
		t.Fatalf("links pay: %v %s %s", err, out, errOut)
	}
	if _, errOut, err = w.cli(w.userKey, "links", "pay", l.ID); err == nil || !strings.Contains(errOut, "payment_link_used_up") {
		t.Fatalf("links pay, used up: %v %s", err, errOut)
	}
	if out, _, err = w.cli(w.merchKey, "links", "list"); err != nil || !strings.Contains(out, l.ID) || !strings.Contains(out, "a pastry") {
		t.Fatalf("links list: %v %s", err, out)
	}
	if out, _, err = w.cli(w.merchKey, "links", "deactivate", l.ID); err != nil || !strings.Contains(out, "false") || !strings.Contains(out, "1 of 1") {
		t.Fatalf("links deactivate: %v %s", err, out)
	}
}

// TestPaymentLinkMaxUsesTwoProcesses: two servers on one PostgreSQL
// database, payers at once through both, on a link of three uses: exactly
// three payments.
func TestPaymentLinkMaxUsesTwoProcesses(t *testing.T) {
	if !storetest.UsePostgres() {
		t.Skip("two processes need a shared store: run with PAYBOUND_TEST_STORE=postgres")
	}
	t.Parallel()
	w := newWorld(t, nil)
	m2 := secondMain(t, w.m, nil)
	other := &api{t: t, base: m2.URL()}
	l := ticketLink(w)
	got := rush(l, fans(w, 12), w.api, other) // every other payer through the second server
	paid := 0
	for i, r := range got {
		switch {
		case r.status == 201 && r.str("status") == "captured":
			paid++
		case r.status == 409 && r.errField("code") == "payment_link_used_up":
		default:
			t.Errorf("payer %d: %d %s", i, r.status, r.raw)
		}
	}
	if m, _ := w.balance(w.merchKey, "USD"); paid != 3 || m != 3*700 {
		t.Fatalf("%d payments, the merchant has %d, on a link of 3 uses", paid, m)
	}
	w.verify()
}

// ticketLink is a link of 7.00 USD that takes three payments.
func ticketLink(w *world) string {
	return w.ok(201, w.call("POST", "/v1/payment_links", w.merchKey, "", map[string]any{"amount": 700, "currency": "USD",
		"description": "concert ticket", "max_uses": 3})).str("id")
}

// fans are the keys of n users with 10.00 USD each.
func fans(w *world, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": fmt.Sprintf("fan %d", i)}))
		keys[i] = u.str("api_key")
		w.ok(201, w.call("POST", "/v1/topups", keys[i], "", map[string]any{"amount": 1000, "currency": "USD"}))
	}
	return keys
}

// rush has every key pay link at once, the i-th through servers[i%len].
func rush(link string, keys []string, servers ...*api) []resp {
	got := make([]resp, len(keys))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range keys {
		via := servers[i%len(servers)]
		wg.Go(func() {
			<-start
			got[i] = via.call("POST", "/v1/payment_links/"+link+"/payments", keys[i], "", nil)
		})
	}
	close(start)
	wg.Wait()
	return got
}
