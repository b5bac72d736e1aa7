package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, or PAYBOUND_CHROMIUM. Browser tests
// skip without it, unless PAYBOUND_REQUIRE_BROWSER is set (./test.sh sets
// it, and installs chromium): then they fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PAYBOUND_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("PAYBOUND_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium is missing at %s and PAYBOUND_REQUIRE_BROWSER is set: apt-get install -y chromium", p)
		}
		t.Skipf("chromium is missing at %s: apt-get install -y chromium (or set PAYBOUND_CHROMIUM) to run the wallet's browser tests", p)
	}
	return p
}

// freeAddr is a loopback address with a free port: the passkey origin
// (http://localhost:<port>) must be known before the server starts.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tab is one headless Chromium tab on the wallet, with a virtual passkey
// authenticator, taking screenshots and running axe-core on what it shows.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	axe   string
	pages map[string]bool // the pages checked by axe and for size
}

func newTab(t *testing.T, base string) *tab {
	path := chromiumPath(t)
	axe, err := os.ReadFile(filepath.Join("..", "..", "interop", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		if os.Getenv("PAYBOUND_REQUIRE_BROWSER") != "" {
			t.Fatalf("axe-core is missing (interop/node_modules; ./test.sh runs npm ci there): %v", err)
		}
		t.Skipf("axe-core is missing: run npm ci in interop/ (%v)", err)
	}
	shots := os.Getenv("PAYBOUND_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(t.TempDir(), "screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true,
		HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}}); err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return &tab{t: t, ctx: ctx, base: base, shots: shots, axe: string(axe), pages: map[string]bool{}}
}

func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
		b.t.Fatalf("%s: %v (at %s: %.800s)", what, err, loc, body)
	}
}

// open navigates to path and waits for its main content.
func (b *tab) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// waitText waits until main shows s.
func (b *tab) waitText(s string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// While the page changes, its nodes go away: try again.
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		got, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		cancel()
		if strings.Contains(got, s) {
			return
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			b.t.Fatalf("the page never showed %q (at %s): %.1500s", s, loc, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check runs axe-core on the page (no serious or critical violation),
// checks that the page and its resources weigh under 100 KB and come from
// this origin only, and saves screenshots at phone and desktop widths.
func (b *tab) check(name string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](b.axe+";true")); err != nil {
		b.t.Fatalf("inject axe-core: %v", err)
	}
	type violation struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			Target []any  `json:"target"`
			HTML   string `json:"html"`
		} `json:"nodes"`
	}
	for _, vp := range [][2]int64{{390, 844}, {1280, 900}} {
		b.do("viewport", chromedp.EmulateViewport(vp[0], vp[1]))
		vs, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]violation](
			`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => ({target: n.target, html: n.html}))})))`,
			func(p *runtime.EvaluateParams) { p.AwaitPromise = ptrTo(true) }))
		if err != nil {
			b.t.Fatalf("axe on %s: %v", name, err)
		}
		for _, v := range vs {
			if v.Impact == "serious" || v.Impact == "critical" {
				b.t.Errorf("axe, %s at %dpx: %s (%s): %s %+v", name, vp[0], v.ID, v.Impact, v.Help, v.Nodes)
			} else {
				b.t.Logf("axe, %s at %dpx, %s: %s (%s)", name, vp[0], v.Impact, v.ID, v.Help)
			}
		}
		shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		kind := "desktop"
		if vp[0] < 600 {
			kind = "phone"
		}
		if err := os.WriteFile(filepath.Join(b.shots, name+"-"+kind+".png"), shot, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	type weight struct {
		HTML      int      `json:"html"`
		Resources int      `json:"resources"`
		Foreign   []string `json:"foreign"`
	}
	wt, err := chromedp.Run(b.ctx, chromedp.Evaluate[weight](`(() => {
		const res = performance.getEntriesByType("resource");
		return {html: new Blob([document.documentElement.outerHTML]).size,
			resources: res.filter(e => !/\.(png|jpe?g|gif|webp|svg)$/.test(e.name)).reduce((a, e) => a + (e.decodedBodySize || 0), 0),
			foreign: res.map(e => e.name).filter(n => !n.startsWith(location.origin + "/"))};
	})()`))
	if err != nil {
		b.t.Fatal(err)
	}
	if total := wt.HTML + wt.Resources; total > 100*1024 {
		b.t.Errorf("%s weighs %d bytes before images; the bar is 100 KB", name, total)
	} else {
		b.t.Logf("%s: %d bytes of HTML, %d of CSS and JS", name, wt.HTML, wt.Resources)
	}
	if len(wt.Foreign) > 0 {
		b.t.Errorf("%s requested other hosts: %v", name, wt.Foreign)
	}
	b.pages[name] = true
}

func ptrTo[T any](v T) *T { return &v }

// TestWalletInTheBrowser drives the wallet in headless Chromium with a
// virtual passkey authenticator: Ada signs in with her key, registers a
// passkey, signs out and in again with it, and with a one-time code; sees her agent's payment
// appear; approves a step-up with the passkey; revokes a mandate and sees
// the agent's next payment declined; stops the agent on the Agents page
// and sees its next payment declined; opens a dispute; pays a payment
// link. Every page passes axe-core with no serious or critical violation,
// weighs under 100 KB, asks no other host, and is photographed at phone
// and desktop widths.
func TestWalletInTheBrowser(t *testing.T) {
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	xw := newX402WorldWith(t, nil, func(m *Main) { m.Config.Addr = addr; m.Config.PasskeyRPID = "localhost" })
	w := xw.world
	base := "http://localhost:" + port
	b := newTab(t, base)
	mandate := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "coffee on weekdays",
		"currency": "USD", "max_amount": 2000, "budget": map[string]any{"amount": 10000, "period": "week"}})).str("id")
	agentPay := func(amount int, mandate, desc string) resp {
		body := map[string]any{"amount": amount, "currency": "USD", "merchant_id": w.merch, "description": desc}
		if mandate != "" {
			body["mandate_id"] = mandate
		}
		return w.call("POST", "/v1/payments", w.agentKey, "", body)
	}
	first := w.ok(201, agentPay(450, mandate, "flat white")).str("id")

	// Sign in with the key.
	b.open("/wallet/")
	b.waitText("With your API key")
	b.check("signin")
	// A control: axe does find a violation when there is one (an image
	// without a text alternative is critical).
	vs, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`(() => { const i = document.createElement("img"); i.src = "/wallet/static/none.png"; i.id = "control";
		document.querySelector("main").append(i); return axe.run(document, {resultTypes: ["violations"]}).then(r => { i.remove(); return r.violations.map(v => v.id + ":" + v.impact); }); })()`,
		func(p *runtime.EvaluateParams) { p.AwaitPromise = ptrTo(true) }))
	if err != nil || !slices.Contains(vs, "image-alt:critical") {
		t.Fatalf("axe missed an image without alt: %v %v", vs, err)
	}
	b.do("sign in with the key", chromedp.SendKeys(chromedp.ID("api_key"), w.userKey), chromedp.Submit(chromedp.ID("api_key")))
	b.waitText("Register a passkey")
	// Register a passkey.
	b.open("/wallet/passkeys")
	b.do("register a passkey", chromedp.Click(chromedp.ID("passkey-register")))
	b.waitText("active")
	b.check("passkeys")
	// Sign out, and in with the passkey.
	b.do("sign out", chromedp.Click(chromedp.CSS(".signout button")))
	b.waitText("With your passkey")
	b.do("sign in with the passkey", chromedp.Click(chromedp.ID("passkey-signin")))
	b.waitText("Balances")
	// Sign out, and in with a one-time code asked for with the key.
	b.do("sign out", chromedp.Click(chromedp.CSS(".signout button")))
	b.waitText("With a one-time code")
	code := w.ok(201, w.call("POST", "/v1/signin_codes", w.userKey, "-", nil)).str("code")
	b.do("sign in with a code", chromedp.SendKeys(chromedp.ID("user_id"), w.user), chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Submit(chromedp.ID("code")))
	b.waitText("Signed in with a one-time code")

	// The agent's payment is there; a new one appears.
	b.open("/wallet/activity")
	b.waitText("flat white")
	second := w.ok(201, agentPay(380, mandate, "cortado")).str("id")
	b.open("/wallet/activity")
	b.waitText("cortado")
	b.check("activity")
	b.open("/wallet/payments/" + second)
	b.waitText("Verified")
	b.check("payment")

	// A step-up: the agent pays without a mandate; Ada approves it with the passkey.
	pend := w.ok(201, agentPay(3900, "", "noise-cancelling headphones"))
	b.open("/wallet/")
	b.waitText("Waiting for you (1)")
	b.check("overview")
	b.open("/wallet/approvals")
	b.waitText("noise-cancelling headphones")
	b.check("approvals")
	b.do("approve with the passkey", chromedp.Click(chromedp.CSS(".passkey-approve")))
	b.waitText("Approved")
	if s := w.ok(200, w.call("GET", "/v1/payments/"+pend.str("id"), w.userKey, "", nil)).str("status"); s != "captured" {
		t.Fatalf("the approved payment is %s", s)
	}

	// Revoke the mandate; the agent's next payment is declined.
	b.open("/wallet/mandates")
	b.waitText("coffee on weekdays")
	b.check("mandates")
	b.do("issue a card", chromedp.Click(chromedp.CSS(`form[action$="/card"] button`)))
	b.waitText("it is shown this once")
	b.check("card")
	b.open("/wallet/mandates")
	b.waitText("coffee on weekdays")
	b.check("mandates-card")
	b.do("revoke the card", chromedp.Click(chromedp.CSS(`form[action*="/cards/"] button`)))
	b.waitText("Card revoked")
	b.do("revoke", chromedp.Click(chromedp.CSS(`form[action$="/mandates/`+mandate+`/revoke"] button`)))
	b.waitText("Mandate revoked")
	if r := agentPay(300, mandate, "one more"); r.status != 402 || r.errField("code") != "mandate_revoked" {
		t.Fatalf("after revoking in the browser: %d %s", r.status, r.raw)
	}
	b.open("/wallet/activity?status=declined")
	b.waitText("mandate_revoked")
	b.open("/wallet/mandates/new?agent=" + w.agent)
	b.waitText("Most per payment")
	b.check("mandate-form")
	b.open("/wallet/agents")
	b.waitText(w.agent)
	b.check("agents")

	// The agent asks for a mandate; Ada reads its terms and approves it.
	req := w.ok(201, w.call("POST", "/v1/mandate_requests", w.agentKey, "", map[string]any{"description": "books for the course",
		"currency": "USD", "max_amount": 3000, "budget": map[string]any{"amount": 9000, "period": "month"},
		"reason": "The reading list is out and the bookshop closes on Friday"})).str("id")
	b.open("/wallet/mandates")
	b.waitText("The reading list is out")
	b.check("mandate-requests")
	b.do("approve the request", chromedp.Click(chromedp.CSS(`form[action$="/approve"] button`)))
	b.waitText("Request approved")

	// The buyer agent opens an x402 tab; Ada sees it and closes it.
	seller := xw.tabSeller(t, filepath.Join(t.TempDir(), "tabs.jsonl"))
	tc, _ := xw.tabClient()
	if res, body := getWith(t, tc, seller.srv.URL+"/tick"); res.StatusCode != 200 || body != "tock" {
		t.Fatalf("tick: %d %s", res.StatusCode, body)
	}
	b.open("/wallet/tabs")
	b.waitText("not known until the seller claims")
	b.check("tabs")
	b.do("close the tab", chromedp.Click(chromedp.CSS(`form[action$="/close"] button`)))
	b.waitText("Tab closed")
	granted := w.ok(200, w.call("GET", "/v1/mandate_requests/"+req, w.agentKey, "", nil))
	if granted.str("status") != "approved" {
		t.Fatalf("approved in the browser: %s", granted.raw)
	}

	// Token Pay: credit from a provider, and a model's usage this month.
	w.ok(201, w.call("POST", "/v1/billing/prices", w.merchKey, "", map[string]any{"model": "gpt-x*", "token_type": "output", "currency": "USD", "unit_price": "10"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 500, "currency": "USD", "category": "promotional"}))
	w.events(map[string]any{"id": "browser-1", "customer": w.user, "model": "gpt-x-mini", "usage": map[string]any{"output": 20_000}})
	b.open("/wallet/tokenpay")
	b.waitText("gpt-x-mini")
	b.check("tokenpay")

	// Stop the agent on the Agents page; its next payment is declined. (At
	// the other merchant: this one's history is risk control's baseline
	// for the payment link below.)
	bookshop := func(desc string) resp {
		return w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 500, "currency": "USD", "merchant_id": w.merch2,
			"description": desc, "mandate_id": granted.str("mandate_id")})
	}
	w.ok(201, bookshop("a paperback"))
	b.open("/wallet/agents")
	b.waitText("Stop this agent")
	b.do("stop the agent", chromedp.Click(chromedp.CSS(`form[action$="/agents/`+w.agent+`/stop"] button`)))
	b.waitText("Every mandate of the agent is revoked")
	if r := bookshop("another paperback"); r.status != 402 || r.errField("code") != "mandate_revoked" {
		t.Fatalf("after stopping the agent in the browser: %d %s", r.status, r.raw)
	}

	// Open a dispute on the first payment.
	b.open("/wallet/payments/" + first)
	b.do("dispute", chromedp.SetValue(chromedp.ID("reason"), "not_as_intended"),
		chromedp.SendKeys(chromedp.ID("details"), "I asked for tea"), chromedp.Submit(chromedp.ID("details")))
	b.waitText("Dispute opened")
	b.open("/wallet/disputes")
	b.waitText("not_as_intended")
	b.check("disputes")

	// Pay a payment link.
	link := w.ok(201, w.call("POST", "/v1/payment_links", w.merchKey, "", map[string]any{"amount": 1250, "currency": "USD", "description": "Breakfast set"})).str("id")
	avail, _ := w.balance(w.userKey, "USD")
	b.open("/wallet/pay/" + link)
	b.waitText("Pay 12.50 USD from my wallet")
	b.check("paylink")
	b.do("pay the link", chromedp.Click(chromedp.CSS(`form[action^="/wallet/pay/"] button`)))
	b.waitText("Paid.")
	if a, _ := w.balance(w.userKey, "USD"); a != avail-1250 {
		t.Fatalf("available %d after paying the link, want %d", a, avail-1250)
	}

	// The merchant's pages.
	b.do("sign out", chromedp.Click(chromedp.CSS(".signout button")))
	b.waitText("With your API key")
	b.do("merchant signs in", chromedp.SendKeys(chromedp.ID("api_key"), w.merchKey), chromedp.Submit(chromedp.ID("api_key")))
	b.waitText("Balances")
	b.check("merchant-overview")
	b.open("/wallet/settlement")
	b.waitText("Download the report")
	b.check("settlement")
	b.open("/wallet/webhooks")
	b.waitText("No webhook endpoint yet")
	b.check("webhooks")
	b.open("/wallet/payments/" + second)
	b.waitText("Refund")
	b.check("merchant-payment")
	w.verify()
	t.Logf("%d pages checked: %s", len(b.pages), strings.Join(keys(b.pages), ", "))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
