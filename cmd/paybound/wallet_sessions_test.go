package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/paybound/paybound/internal/signin"
	"github.com/paybound/paybound/internal/storetest"
)

// moveTo points b at another server, keeping its cookies (as a browser
// does for the same origin behind a load balancer or after a restart).
func (b *browser) moveTo(base string) {
	old, _ := url.Parse(b.base + "/wallet/")
	nu, _ := url.Parse(base + "/wallet/")
	b.c.Jar.SetCookies(nu, b.c.Jar.Cookies(old))
	b.base = base
}

// TestWalletSessionSurvivesRestart: a session is in the store, so a
// restart of the server keeps it, with its CSRF token: pages and actions
// work as before. A form without the token is still refused; signing out
// ends the session in the store; it still expires 12 hours after sign-in.
func TestWalletSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	dir := t.TempDir()
	m := startMain(t, dir, func(m *Main) { m.Clock = clock })
	a := &api{t: t, base: m.URL()}
	u := a.ok(201, a.call("POST", "/v1/users", m.OperatorKey, "", map[string]any{"name": "Ada"}))
	b := newBrowser(t, m.URL())
	b.signIn(u.str("api_key"))
	b2 := newBrowser(t, m.URL())
	b2.signIn(u.str("api_key"))
	csrf := b.csrf

	m.Close()
	m = startMain(t, dir, func(m *Main) { m.Clock = clock })
	b.moveTo(m.URL())
	b2.moveTo(m.URL())
	wantStatus(t, "a page after the restart", b.get("/wallet/passkeys"), 200, u.str("id"))
	if b.csrf != csrf {
		t.Fatal("the session's CSRF token changed with the restart")
	}
	wantStatus(t, "an action after the restart", b.fetch("/wallet/passkeys/options", b.csrf, map[string]any{}), 200, `"challenge"`)
	wantStatus(t, "an action without the token", b.fetch("/wallet/passkeys/options", "", map[string]any{}), 403, "did not come from this wallet")
	wantStatus(t, "another browser's token", b.fetch("/wallet/passkeys/options", otherToken(csrf), map[string]any{}), 403, "did not come from this wallet")

	// Expiry, on the server's clock, after the restart too.
	clock.Advance(signin.DefaultSessionTTL - time.Minute)
	wantStatus(t, "before expiry", b2.get("/wallet/passkeys"), 200, "Passkeys")
	clock.Advance(2 * time.Minute)
	if r := b2.get("/wallet/passkeys"); r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/wallet/signin") {
		t.Fatalf("expired session: %d %v", r.status, r.header)
	}
	wantStatus(t, "an action with an expired session", b2.fetch("/wallet/passkeys/options", b2.csrf, map[string]any{}), 401, "your session has ended")
}

// TestWalletSignOutEverywhere: "sign out everywhere" ends every session
// of the person, other browsers' too, and nobody else's; a plain sign-out
// ends one.
func TestWalletSignOutEverywhere(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b1, b2, b3, merchant := newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL()), newBrowser(t, w.m.URL())
	for _, b := range []*browser{b1, b2, b3} {
		b.signIn(w.userKey)
	}
	merchant.signIn(w.merchKey)
	b1.get("/wallet/passkeys")
	wantStatus(t, "without the token", b1.form("/wallet/signout", url.Values{"everywhere": {"1"}, "csrf": {""}}), 403, "did not come from this wallet")
	wantStatus(t, "b2 still in", b2.get("/wallet/passkeys"), 200, "Sign out everywhere")
	if r := b3.form("/wallet/signout", url.Values{}); r.status != 303 {
		t.Fatalf("sign out: %d", r.status)
	}
	wantStatus(t, "b1 after b3 signed out", b1.get("/wallet/passkeys"), 200, "Passkeys")
	if r := b1.form("/wallet/signout", url.Values{"everywhere": {"1"}}); r.status != 303 {
		t.Fatalf("sign out everywhere: %d %s", r.status, r.body)
	}
	for name, b := range map[string]*browser{"b1": b1, "b2": b2} {
		if r := b.get("/wallet/"); r.status != 303 {
			t.Fatalf("%s after sign out everywhere: %d", name, r.status)
		}
	}
	wantStatus(t, "the merchant's session", merchant.get("/wallet/"), 200, "Overview")
}

// TestWalletSessionsBounded: a party has at most 20 live sessions; the
// 21st sign-in ends the oldest.
func TestWalletSessionsBounded(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	var bs []*browser
	for range signin.DefaultMaxSessions + 1 {
		b := newBrowser(t, w.m.URL())
		b.signIn(w.userKey)
		bs = append(bs, b)
		clock.Advance(time.Second)
	}
	if r := bs[0].get("/wallet/"); r.status != 303 {
		t.Fatalf("the oldest of %d sessions: %d", len(bs), r.status)
	}
	for i, b := range bs[1:] {
		if r := b.get("/wallet/"); r.status != 200 {
			t.Fatalf("session %d: %d", i+1, r.status)
		}
	}
}

// TestWalletSessionSharedByReplicas: two servers on one PostgreSQL
// database share sessions: signed in on one, a browser is signed in on
// the other, and signing out on one ends it on both.
func TestWalletSessionSharedByReplicas(t *testing.T) {
	if !storetest.UsePostgres() {
		t.Skip("two servers share a database only on PostgreSQL (PAYBOUND_TEST_STORE=postgres)")
	}
	t.Parallel()
	w := newWorld(t, nil)
	m2 := secondMain(t, w.m, nil)
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	one := w.m.URL()
	b.moveTo(m2.URL())
	wantStatus(t, "the other replica", b.get("/wallet/passkeys"), 200, w.user)
	wantStatus(t, "an action on the other replica", b.fetch("/wallet/passkeys/options", b.csrf, map[string]any{}), 200, `"challenge"`)
	c := *b.sessionCookie()
	if r := b.form("/wallet/signout", url.Values{}); r.status != 303 {
		t.Fatalf("sign out: %d", r.status)
	}
	// The cookie the browser had, replayed on the first replica.
	b2 := newBrowser(t, one)
	u, _ := url.Parse(one + "/wallet/")
	b2.c.Jar.SetCookies(u, []*http.Cookie{&c})
	if r := b2.get("/wallet/"); r.status != 303 {
		t.Fatalf("signed out on one replica, still in on the other: %d", r.status)
	}
}

// TestWalletPasskeyChallenges: a passkey sign-in's challenge is the
// server's (it carries its expiry and a MAC, nothing is stored until a
// sign-in succeeds): an expired one, one the browser was not given, and
// one used already are refused. On PostgreSQL, a sign-in begun on one
// server finishes on another, and its assertion replayed on the first is
// refused: the challenge is used up in the store.
func TestWalletPasskeyChallenges(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w, _, rp, auth, cred := walletWithPasskey(t, clock)

	// begin asks base for options; the assertion answers them, with
	// tamper applied to them first.
	begin := func(base string, tamper func(*virtualwebauthn.AssertionOptions)) string {
		t.Helper()
		c := newBrowser(t, base)
		c.get("/wallet/signin")
		o := c.fetch("/wallet/signin/passkey/options", c.csrf, map[string]any{})
		ro, err := virtualwebauthn.ParseAssertionOptions(o.body)
		if err != nil {
			t.Fatalf("options: %v %s", err, o.body)
		}
		if tamper != nil {
			tamper(ro)
		}
		return virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *ro)
	}
	finish := func(base, assertion string) (*browser, wpage) {
		t.Helper()
		c := newBrowser(t, base)
		c.get("/wallet/signin")
		return c, c.fetch("/wallet/signin/passkey", c.csrf, json.RawMessage(assertion))
	}

	as := begin(w.m.URL(), nil)
	clock.Advance(5*time.Minute + time.Second)
	if c, r := finish(w.m.URL(), as); r.status != 400 || !strings.Contains(r.body, "expired or was already used") || c.sessionCookie() != nil {
		t.Fatalf("an expired challenge: %d %s", r.status, r.body)
	}
	as = begin(w.m.URL(), func(o *virtualwebauthn.AssertionOptions) { o.Challenge[len(o.Challenge)-1] ^= 1 })
	if _, r := finish(w.m.URL(), as); r.status != 400 || !strings.Contains(r.body, "expired or was already used") {
		t.Fatalf("a challenge the server did not give: %d %s", r.status, r.body)
	}
	as = begin(w.m.URL(), nil)
	c, r := finish(w.m.URL(), as)
	wantStatus(t, "passkey sign-in", r, 200, `"redirect":"/wallet/"`)
	wantStatus(t, "signed in", c.get("/wallet/passkeys"), 200, w.user)
	if c, r := finish(w.m.URL(), as); r.status != 400 || !strings.Contains(r.body, "expired or was already used") || c.sessionCookie() != nil {
		t.Fatalf("a used challenge: %d %s", r.status, r.body)
	}

	if !storetest.UsePostgres() {
		return
	}
	m2 := secondMain(t, w.m, func(m *Main) { m.Clock = clock; m.Config.PasskeyRPID, m.Config.PasskeyOrigin = rp.ID, rp.Origin })
	as = begin(w.m.URL(), nil)
	c, r = finish(m2.URL(), as)
	wantStatus(t, "a sign-in finished on the other server", r, 200, `"redirect":"/wallet/"`)
	wantStatus(t, "signed in there", c.get("/wallet/passkeys"), 200, w.user)
	if _, r := finish(w.m.URL(), as); r.status != 400 || !strings.Contains(r.body, "expired or was already used") {
		t.Fatalf("its assertion replayed on the first server: %d %s", r.status, r.body)
	}
}

// walletWithPasskey starts a world on clock whose passkey relying party
// is pay.test, signs its user in with their key (b) and registers a
// passkey through the wallet: auth holds it as cred.
func walletWithPasskey(t *testing.T, clock *testClock) (w *world, b *browser, rp virtualwebauthn.RelyingParty, auth virtualwebauthn.Authenticator, cred virtualwebauthn.Credential) {
	t.Helper()
	rp = virtualwebauthn.RelyingParty{Name: "Paybound", ID: "pay.test", Origin: "https://pay.test"}
	w = newWorld(t, func(m *Main) { m.Config.PasskeyRPID, m.Config.PasskeyOrigin = rp.ID, rp.Origin; m.Clock = clock })
	auth = virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(w.user)})
	b = newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	ao, err := virtualwebauthn.ParseAttestationOptions(b.fetch("/wallet/passkeys/options", b.csrf, map[string]any{}).body)
	if err != nil {
		t.Fatal(err)
	}
	cred = newCredential(t)
	wantStatus(t, "register", b.fetch("/wallet/passkeys", b.csrf, json.RawMessage(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao))), 201, "added=1")
	auth.AddCredential(cred)
	return w, b, rp, auth, cred
}

// TestWalletPasskeyCounter: a passkey sign-in stores the authenticator's
// signature counter, so an assertion whose counter did not move past it
// (what a cloned authenticator sends) is refused and starts no session,
// while the genuine authenticator, counting on, still signs in.
func TestWalletPasskeyCounter(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w, _, rp, auth, cred := walletWithPasskey(t, clock)
	signIn := func(counter uint32) (*browser, wpage) {
		t.Helper()
		c := newBrowser(t, w.m.URL())
		c.get("/wallet/signin")
		o, err := virtualwebauthn.ParseAssertionOptions(c.fetch("/wallet/signin/passkey/options", c.csrf, map[string]any{}).body)
		if err != nil {
			t.Fatal(err)
		}
		cred.Counter = counter
		return c, c.fetch("/wallet/signin/passkey", c.csrf, json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *o)))
	}
	c, r := signIn(5)
	wantStatus(t, "counter 5", r, 200, `"redirect":"/wallet/"`)
	wantStatus(t, "signed in", c.get("/wallet/passkeys"), 200, w.user)
	for _, n := range []uint32{5, 3, 0} {
		if c, r := signIn(n); r.status != 400 || !strings.Contains(r.body, "may have been cloned") || c.sessionCookie() != nil {
			t.Fatalf("counter %d after 5: %d %s", n, r.status, r.body)
		}
	}
	c, r = signIn(6)
	wantStatus(t, "counter 6", r, 200, `"redirect":"/wallet/"`)
	wantStatus(t, "signed in again", c.get("/wallet/passkeys"), 200, w.user)
	if _, r := signIn(6); r.status != 400 || !strings.Contains(r.body, "may have been cloned") {
		t.Fatalf("counter 6 twice: %d %s", r.status, r.body)
	}
}
