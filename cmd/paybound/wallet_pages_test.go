package main

import (
	"encoding/csv"
	"net/url"
	"regexp"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
)

// walletWorld is a world whose agent pays the cafe under a mandate, with
// a second user (Bob) who has paid the other merchant.
type walletWorld struct {
	*world
	mandate         string
	bob, bobKey     string
	bobPay, adaPay  string
	adaPay2, pendID string
	pendCfm         string
}

func newWalletWorld(t *testing.T, configure ...func(*Main)) *walletWorld {
	var cfg func(*Main)
	if len(configure) > 0 {
		cfg = configure[0]
	}
	w := &walletWorld{world: newWorld(t, cfg)}
	w.mandate = w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "coffee",
		"currency": "USD", "max_amount": 5000, "budget": map[string]any{"amount": 20000, "period": "month"}})).str("id")
	w.adaPay = w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 1250, "currency": "USD",
		"merchant_id": w.merch, "mandate_id": w.mandate, "description": "flat white and croissant"})).str("id")
	w.adaPay2 = w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 300, "currency": "USD",
		"merchant_id": w.merch, "mandate_id": w.mandate, "description": "=HYPERLINK(\"x\") espresso", "capture_method": "manual"})).str("id")
	// Without a mandate the agent's payment waits for Ada.
	p := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 9900, "currency": "USD",
		"merchant_id": w.merch2, "description": "headphones"}))
	w.pendID = p.str("id")
	w.pendCfm = p.body["confirmation"].(map[string]any)["id"].(string)
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bob"}))
	w.bob, w.bobKey = u.str("id"), u.str("api_key")
	w.ok(201, w.call("POST", "/v1/topups", w.bobKey, "", map[string]any{"amount": 7000, "currency": "USD"}))
	w.bobPay = w.ok(201, w.call("POST", "/v1/payments", w.bobKey, "", map[string]any{"amount": 4200, "currency": "USD",
		"merchant_id": w.merch2, "description": "bob's secret book"})).str("id")
	return w
}

// TestWalletOverviewAndActivity: Ada's overview shows her balance, the
// payment waiting for her on top and the month's spend by agent and
// category; the activity lists every payment with its agent, mandate,
// merchant, amount, status and risk decision, filters and searches them,
// exports them as CSV, and each row opens the payment page, whose trace is
// verified against the signed checkpoint.
func TestWalletOverviewAndActivity(t *testing.T) {
	t.Parallel()
	w := newWalletWorld(t)
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)

	o := b.get("/wallet/")
	wantStatus(t, "overview", o, 200, "Waiting for you (1)")
	avail, _ := w.balance(w.userKey, "USD")
	for _, s := range []string{w.pendID, "headphones", w.agent, "food", "15.50 USD", "<svg role=\"img\"", "Available",
		"99.00 USD", pb.FormatAmount(avail, "USD") + " USD"} {
		if !strings.Contains(o.body, s) {
			t.Errorf("overview lacks %q", s)
		}
	}
	if strings.Index(o.body, "Waiting for you") > strings.Index(o.body, "Balances") {
		t.Error("pending approvals are not on top")
	}

	a := b.get("/wallet/activity")
	wantStatus(t, "activity", a, 200, w.adaPay)
	for _, s := range []string{w.adaPay2, w.pendID, w.mandate, "Cafe", "requires_confirmation", "authorized", "captured", "allow", `href="/wallet/payments/` + w.adaPay + `"`} {
		if !strings.Contains(a.body, s) {
			t.Errorf("activity lacks %q", s)
		}
	}
	f := b.get("/wallet/activity?status=authorized")
	if !strings.Contains(f.body, w.adaPay2) || strings.Contains(f.body, w.adaPay+`"`) || strings.Contains(f.body, w.pendID) {
		t.Errorf("status filter: %.2000s", f.body)
	}
	f = b.get("/wallet/activity?q=CROISSANT")
	if !strings.Contains(f.body, w.adaPay) || strings.Contains(f.body, w.adaPay2) {
		t.Error("search")
	}
	f = b.get("/wallet/activity?from=2000-01-01&to=2000-01-02")
	wantStatus(t, "date range", f, 200, "No payments match")
	wantStatus(t, "bad date", b.get("/wallet/activity?from=yesterday"), 400, "from must be a date")
	wantStatus(t, "bad status", b.get("/wallet/activity?status=paid"), 400, "status must be one of")

	c := b.get("/wallet/activity.csv?agent=" + w.agent)
	if c.status != 200 || !strings.HasPrefix(c.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %v", c.status, c.header)
	}
	rows, err := csv.NewReader(strings.NewReader(c.body)).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "id" {
		t.Fatalf("csv rows: %v %q", err, c.body)
	}
	for _, r := range rows[1:] {
		if r[5] != w.agent {
			t.Errorf("agent filter in csv: %v", r)
		}
		if strings.HasPrefix(r[9], "=") {
			t.Errorf("a formula reached the CSV: %q", r[9])
		}
	}

	pg := b.get("/wallet/payments/" + w.adaPay)
	wantStatus(t, "payment page", pg, 200, "Verified: every step below is in the transparency log")
	for _, s := range []string{"payment.created", "proven", w.mandate, "Open a dispute"} {
		if !strings.Contains(pg.body, s) {
			t.Errorf("payment page lacks %q", s)
		}
	}
	w.verify()
}

// TestWalletIsolation: a signed-in party sees only what it is a party to,
// on every page and in the export, and guessing another's payment ID
// finds nothing; actions on another's payment change nothing.
func TestWalletIsolation(t *testing.T) {
	t.Parallel()
	w := newWalletWorld(t)
	ada, bob, cafe, other := newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL())
	ada.signIn(w.userKey)
	bob.signIn(w.bobKey)
	cafe.signIn(w.merchKey)
	other.signIn(w.merch2Key)

	dsp := w.ok(201, w.call("POST", "/v1/payments/"+w.adaPay+"/disputes", w.userKey, "", map[string]any{"reason": "other"})).str("id")
	pages := []string{"/wallet/", "/wallet/activity", "/wallet/activity.csv", "/wallet/activity?q=pay_", "/wallet/passkeys",
		"/wallet/disputes", "/wallet/approvals", "/wallet/mandates", "/wallet/agents", "/wallet/webhooks", "/wallet/settlement", "/wallet/settlement.csv"}
	sees := func(b *browser, who string, want, not []string) {
		t.Helper()
		for _, path := range pages {
			body := b.get(path).body
			for _, id := range want {
				if strings.HasPrefix(path, "/wallet/activity") && !strings.Contains(body, id) {
					t.Errorf("%s: %s lacks %s", who, path, id)
				}
			}
			for _, id := range not {
				if strings.Contains(body, id) {
					t.Errorf("%s: %s shows %s", who, path, id)
				}
			}
		}
		// Another's payment ID answers exactly as an ID that never existed.
		const never = "pay_00000000000000000000000000"
		none := b.get("/wallet/payments/" + never)
		for _, id := range not {
			if !strings.HasPrefix(id, "pay_") {
				continue
			}
			r := b.get("/wallet/payments/" + id)
			if r.status != 404 || strings.ReplaceAll(r.body, id, never) != none.body {
				t.Errorf("%s: payment %s: %d %.300s", who, id, r.status, r.body)
			}
		}
	}
	sees(ada, "Ada", []string{w.adaPay, w.adaPay2, w.pendID}, []string{w.bobPay, "secret book", w.bob})
	sees(bob, "Bob", []string{w.bobPay}, []string{w.adaPay, w.adaPay2, w.pendID, "croissant", "headphones", w.user, w.agent, dsp, w.mandate})
	sees(cafe, "the cafe", []string{w.adaPay, w.adaPay2}, []string{w.bobPay, w.pendID, "secret book", "headphones"})
	sees(other, "the other merchant", []string{w.bobPay, w.pendID}, []string{w.adaPay, w.adaPay2, "croissant", dsp})
	if !strings.Contains(ada.get("/wallet/disputes").body, dsp) || !strings.Contains(cafe.get("/wallet/disputes").body, dsp) {
		t.Error("the dispute's parties don't see it")
	}

	// Acting on another's payment: refused, nothing changed.
	before := snapshot(w.world)
	bob.get("/wallet/activity")
	for _, path := range []string{"/cancel", "/dispute", "/refund"} {
		if r := bob.form("/wallet/payments/"+w.adaPay2+path, url.Values{"idem": {"k" + path[1:]}, "reason": {"other"}}); r.status != 404 {
			t.Errorf("Bob %s on Ada's payment: %d %.300s", path, r.status, r.body)
		}
	}
	if r := other.form("/wallet/payments/"+w.adaPay+"/refund", url.Values{"idem": {"k1"}, "amount": {"1.00"}}); r.status != 404 {
		t.Errorf("another merchant refunded: %d", r.status)
	}
	// Nor Ada's approval: Bob can neither read its passkey challenge nor
	// approve or deny it.
	if r := bob.fetch("/wallet/approvals/"+w.pendCfm+"/options", bob.csrf, map[string]any{}); r.status != 404 {
		t.Errorf("Bob read Ada's approval challenge: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/deny", "/code"} {
		if r := bob.form("/wallet/approvals/"+w.pendCfm+path, url.Values{"idem": {"a" + path[1:]}, "code": {"123456"}}); r.status != 404 || strings.Contains(r.body, "headphones") {
			t.Errorf("Bob %s on Ada's approval: %d", path, r.status)
		}
	}
	if strings.Contains(bob.get("/wallet/approvals").body, w.pendCfm) {
		t.Error("Bob sees Ada's approval")
	}
	if after := snapshot(w.world); after != before {
		t.Errorf("refused actions changed something:\n%s\n%s", before, after)
	}
	w.verify()
}

// TestWalletPaymentActions: the payer cancels a held payment and disputes
// a captured one; the merchant refunds; each form submitted twice acts
// once; bad input is refused with a clear message and changes nothing.
func TestWalletPaymentActions(t *testing.T) {
	t.Parallel()
	w := newWalletWorld(t)
	ada, cafe := newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL())
	ada.signIn(w.userKey)
	cafe.signIn(w.merchKey)

	// Cancel Ada's held payment, twice with the same form.
	wantStatus(t, "held payment", ada.get("/wallet/payments/"+w.adaPay2), 200, "Cancel this payment")
	availBefore, _ := w.balance(w.userKey, "USD")
	form := url.Values{"idem": {"cancel-1"}}
	for range 2 {
		if r := ada.form("/wallet/payments/"+w.adaPay2+"/cancel", form); r.status != 303 {
			t.Fatalf("cancel: %d %.500s", r.status, r.body)
		}
	}
	if got := w.ok(200, w.call("GET", "/v1/payments/"+w.adaPay2, w.userKey, "", nil)).str("status"); got != "canceled" {
		t.Fatalf("after cancel: %s", got)
	}
	if a, _ := w.balance(w.userKey, "USD"); a != availBefore+300 {
		t.Fatalf("available after cancel %d, want %d", a, availBefore+300)
	}
	wantStatus(t, "no idem", ada.form("/wallet/payments/"+w.adaPay2+"/cancel", url.Values{}), 400, "this form is incomplete")

	// The cafe refunds 2.50 of the captured one; a bad amount first.
	cafe.get("/wallet/payments/" + w.adaPay)
	wantStatus(t, "bad amount", cafe.form("/wallet/payments/"+w.adaPay+"/refund", url.Values{"idem": {"r0"}, "amount": {"2.5.0"}}), 400, "amount")
	wantStatus(t, "too much", cafe.form("/wallet/payments/"+w.adaPay+"/refund", url.Values{"idem": {"r1"}, "amount": {"99.00"}}), 400, "")
	for range 2 {
		if r := cafe.form("/wallet/payments/"+w.adaPay+"/refund", url.Values{"idem": {"r2"}, "amount": {"2.50"}, "reason": {"cold coffee"}}); r.status != 303 {
			t.Fatalf("refund: %d %.500s", r.status, r.body)
		}
	}
	if got := w.ok(200, w.call("GET", "/v1/payments/"+w.adaPay, w.userKey, "", nil)).num("amount_refunded"); got != 250 {
		t.Fatalf("refunded %d, want 250", got)
	}
	// The same key with another amount: refused as the API refuses it.
	wantStatus(t, "idem conflict", cafe.form("/wallet/payments/"+w.adaPay+"/refund", url.Values{"idem": {"r2"}, "amount": {"3.00"}}), 422, "")
	// A user can't refund.
	wantStatus(t, "user refund", ada.form("/wallet/payments/"+w.adaPay+"/refund", url.Values{"idem": {"r3"}, "amount": {"1.00"}}), 403, "")

	// Ada disputes it.
	wantStatus(t, "no reason", ada.form("/wallet/payments/"+w.adaPay+"/dispute", url.Values{"idem": {"d0"}}), 400, "choose what went wrong")
	wantStatus(t, "bad reason", ada.form("/wallet/payments/"+w.adaPay+"/dispute", url.Values{"idem": {"d1"}, "reason": {"bored"}}), 400, "reason must be one of")
	if r := ada.form("/wallet/payments/"+w.adaPay+"/dispute", url.Values{"idem": {"d2"}, "reason": {"not_as_intended"}, "details": {"I asked for tea"}}); r.status != 303 {
		t.Fatalf("dispute: %d %.500s", r.status, r.body)
	}
	pg := ada.get("/wallet/payments/" + w.adaPay + "?done=dispute")
	wantStatus(t, "disputed", pg, 200, "Dispute opened")
	if !strings.Contains(pg.body, "not_as_intended") || strings.Contains(pg.body, "Open a dispute</button>") {
		t.Errorf("dispute shown / button hidden: %.3000s", pg.body)
	}
	if l := w.ok(200, w.call("GET", "/v1/disputes", w.userKey, "", nil)); len(l.body["data"].([]any)) != 1 {
		t.Fatalf("disputes: %s", l.raw)
	}
	w.verify()
}

// BenchmarkWalletPages: the overview and the activity of a person with
// 300 payments, over the real server (SQLite).
func BenchmarkWalletPages(b *testing.B) {
	w := newWorld(b, nil)
	for i := range 300 {
		w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 10 + i%50, "currency": "USD",
			"merchant_id": []string{w.merch, w.merch2}[i%2], "description": "item"}))
	}
	br := newBrowser(b, w.m.URL())
	br.signIn(w.userKey)
	b.Logf("activity: %d bytes", len(br.get("/wallet/activity").body))
	for _, path := range []string{"/wallet/", "/wallet/activity", "/wallet/activity.csv", "/wallet/passkeys"} {
		b.Run(strings.TrimPrefix(path, "/wallet/"), func(b *testing.B) {
			for b.Loop() {
				if r := br.get(path); r.status != 200 {
					b.Fatalf("%s: %d", path, r.status)
				}
			}
		})
	}
}

// TestWalletActivityPages: the activity shows 100 payments a page, newest
// first, with links to the older and newer pages that keep the filter; the
// CSV export has them all.
func TestWalletActivityPages(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	var ids []string
	for i := range 230 {
		ids = append(ids, w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 10 + i%50, "currency": "USD",
			"merchant_id": w.merch, "description": "item"})).str("id"))
	}
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	count := func(body string) int { return strings.Count(body, `<a href="/wallet/payments/pay_`) }
	p1 := b.get("/wallet/activity?status=captured")
	if n := count(p1.body); n != 100 || !strings.Contains(p1.body, ids[229]) || !strings.Contains(p1.body, `href="/wallet/activity?page=2&amp;status=captured">Older`) || strings.Contains(p1.body, ">Newer<") {
		t.Fatalf("page 1: %d rows, newest %v, links %q", n, strings.Contains(p1.body, ids[229]), regexp.MustCompile(`<nav aria-label="Pages".*</nav>`).FindString(p1.body))
	}
	p3 := b.get("/wallet/activity?status=captured&page=3")
	if n := count(p3.body); n != 30 || !strings.Contains(p3.body, ids[0]) || strings.Contains(p3.body, ">Older<") || !strings.Contains(p3.body, ">Newer<") {
		t.Fatalf("page 3: %d rows", n)
	}
	wantStatus(t, "page 0", b.get("/wallet/activity?page=0"), 400, "page must be a number")
	// The page's own export link, followed.
	m := regexp.MustCompile(`<a href="([^"]+)" download>Export`).FindStringSubmatch(p3.body)
	if m == nil || !strings.HasPrefix(m[1], "/wallet/activity.csv?status=captured") {
		t.Fatalf("export link: %v", m)
	}
	c := b.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if rows, err := csv.NewReader(strings.NewReader(c.body)).ReadAll(); err != nil || len(rows) != 231 {
		t.Fatalf("csv: %d rows, %v", len(rows), err)
	}
}
