package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
)

// browser is a client of the wallet as a browser would be: a cookie jar,
// no redirects followed, the CSRF token of the last page kept.
type browser struct {
	t    testing.TB
	c    *http.Client
	base string
	csrf string
}

type wpage struct {
	status int
	header http.Header
	body   string
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" (?:content|value)="([^"]+)"`)

func (b *browser) do(req *http.Request) wpage {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	p := wpage{status: res.StatusCode, header: res.Header, body: string(raw)}
	if m := csrfRE.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) wpage {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

// form posts vals with the page's CSRF token unless vals sets csrf.
func (b *browser) form(path string, vals url.Values) wpage {
	b.t.Helper()
	if _, ok := vals["csrf"]; !ok {
		vals.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// fetch posts JSON as the wallet's script does, with token as the
// X-CSRF-Token header.
func (b *browser) fetch(path, token string, body any) wpage {
	b.t.Helper()
	j, _ := json.Marshal(body)
	if raw, ok := body.(json.RawMessage); ok {
		j = raw
	}
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(string(j)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-CSRF-Token", token)
	}
	return b.do(req)
}

// signIn signs in with key through the sign-in form.
func (b *browser) signIn(key string) {
	b.t.Helper()
	b.get("/wallet/signin")
	if r := b.form("/wallet/signin", url.Values{"api_key": {key}}); r.status != 303 {
		b.t.Fatalf("sign in: %d %s", r.status, r.body)
	}
	if r := b.get("/wallet/"); r.status != 200 {
		b.t.Fatalf("overview after sign-in: %d %s", r.status, r.body)
	}
}

func (b *browser) sessionCookie() *http.Cookie {
	u, _ := url.Parse(b.base + "/wallet/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "pbw_session" {
			return c
		}
	}
	return nil
}

// otherToken is a token of tok's length that is not tok: its first
// character changed (a fixed replacement would, once in 64 runs, be the
// one it already had).
func otherToken(tok string) string {
	if strings.HasPrefix(tok, "x") {
		return "y" + tok[1:]
	}
	return "x" + tok[1:]
}

func wantStatus(t testing.TB, what string, p wpage, status int, contains string) {
	t.Helper()
	if p.status != status || !strings.Contains(p.body, contains) {
		t.Fatalf("%s: %d, want %d with %q: %.600s", what, p.status, status, contains, p.body)
	}
}

// TestWalletSignInAndCSRF: a person signs in with their API key; what
// lacks the CSRF token, or comes from another origin, is refused and
// changes nothing; agent and bad keys do not sign in; signing out ends
// the session for good.
func TestWalletSignInAndCSRF(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b := newBrowser(t, w.m.URL())

	r := b.get("/wallet/")
	if r.status != 303 || r.header.Get("Location") != "/wallet/signin?next=%2Fwallet%2F" {
		t.Fatalf("signed out overview: %d %v", r.status, r.header)
	}
	r = b.get("/wallet/signin")
	wantStatus(t, "sign-in page", r, 200, "Sign in with a passkey")
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP: %q", csp)
	}
	// Without the token, or with another one: refused.
	wantStatus(t, "no token", b.form("/wallet/signin", url.Values{"api_key": {w.userKey}, "csrf": {""}}), 403, "did not come from this wallet")
	wantStatus(t, "wrong token", b.form("/wallet/signin", url.Values{"api_key": {w.userKey}, "csrf": {otherToken(b.csrf)}}), 403, "did not come from this wallet")
	wantStatus(t, "bad key", b.form("/wallet/signin", url.Values{"api_key": {"pbk_nope"}}), 401, "That key was not accepted")
	wantStatus(t, "agent key", b.form("/wallet/signin", url.Values{"api_key": {w.agentKey}}), 403, "the wallet is for people and merchants")
	wantStatus(t, "operator key", b.form("/wallet/signin", url.Values{"api_key": {w.op}}), 403, "the wallet is for people and merchants")
	if b.sessionCookie() != nil {
		t.Fatal("a refused sign-in left a session")
	}
	// Another site's form is refused by the origin check too.
	req, _ := http.NewRequest("POST", b.base+"/wallet/signin", strings.NewReader(url.Values{"api_key": {w.userKey}, "csrf": {b.csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	if r := b.do(req); r.status != 403 || b.sessionCookie() != nil {
		t.Fatalf("cross-site sign-in: %d", r.status)
	}

	b.signIn(w.userKey)
	c := b.sessionCookie()
	if c == nil {
		t.Fatal("no session cookie")
	}
	r = b.get("/wallet/")
	wantStatus(t, "overview", r, 200, "500.00 USD")
	// The cookie's attributes, as the server set them.
	b2 := newBrowser(t, w.m.URL())
	b2.get("/wallet/signin")
	r = b2.form("/wallet/signin", url.Values{"api_key": {w.userKey}})
	set := strings.Join(r.header.Values("Set-Cookie"), "\n")
	if !regexp.MustCompile(`pbw_session=[^;]+; Path=/wallet/; Max-Age=43200; HttpOnly; SameSite=Lax`).MatchString(set) || strings.Contains(set, "pbw_session=x; Secure") {
		t.Fatalf("session cookie: %s", set)
	}

	// Sign-out without the token is refused and signs nobody out.
	wantStatus(t, "sign-out without token", b.form("/wallet/signout", url.Values{"csrf": {""}}), 403, "did not come from this wallet")
	wantStatus(t, "still signed in", b.get("/wallet/"), 200, "Overview")
	old := *c
	if r := b.form("/wallet/signout", url.Values{}); r.status != 303 {
		t.Fatalf("sign out: %d", r.status)
	}
	if r := b.get("/wallet/"); r.status != 303 {
		t.Fatalf("after sign-out: %d", r.status)
	}
	// The old cookie, replayed, is worthless.
	b3 := newBrowser(t, w.m.URL())
	u, _ := url.Parse(b.base + "/wallet/")
	b3.c.Jar.SetCookies(u, []*http.Cookie{&old})
	if r := b3.get("/wallet/passkeys"); r.status != 303 {
		t.Fatalf("replayed cookie after sign-out: %d", r.status)
	}
	w.verify()
}

// TestWalletSessionExpires: a session ends 12 hours after sign-in; then a
// page sends the person to sign in and a state change is refused.
func TestWalletSessionExpires(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	clock.Advance(12*time.Hour - time.Minute)
	wantStatus(t, "before expiry", b.get("/wallet/passkeys"), 200, "Passkeys")
	clock.Advance(2 * time.Minute)
	if r := b.get("/wallet/passkeys"); r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/wallet/signin") {
		t.Fatalf("expired session: %d %v", r.status, r.header)
	}
	wantStatus(t, "state change with an expired session", b.fetch("/wallet/passkeys/options", b.csrf, map[string]any{}), 401, "unauthenticated")
}

// TestWalletPasskeySignIn: signed in with their key, a person registers a
// passkey through the wallet; signed out, they sign in with it. A used or
// forged challenge, a missing token and a revoked passkey are refused.
func TestWalletPasskeySignIn(t *testing.T) {
	t.Parallel()
	rp := virtualwebauthn.RelyingParty{Name: "Paybound", ID: "pay.test", Origin: "https://pay.test"}
	w := newWorld(t, func(m *Main) { m.Config.PasskeyRPID, m.Config.PasskeyOrigin = rp.ID, rp.Origin })
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(w.user)})
	b := newBrowser(t, w.m.URL())
	b.signIn(w.userKey)
	wantStatus(t, "passkeys page", b.get("/wallet/passkeys"), 200, "You have no passkey yet")

	wantStatus(t, "options without token", b.fetch("/wallet/passkeys/options", "", map[string]any{}), 403, "did not come from this wallet")
	o := b.fetch("/wallet/passkeys/options", b.csrf, map[string]any{})
	wantStatus(t, "registration options", o, 200, `"challenge"`)
	ao, err := virtualwebauthn.ParseAttestationOptions(o.body)
	if err != nil {
		t.Fatal(err)
	}
	cred := newCredential(t)
	att := virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)
	wantStatus(t, "register without token", b.fetch("/wallet/passkeys", "", json.RawMessage(att)), 403, "did not come from this wallet")
	wantStatus(t, "register", b.fetch("/wallet/passkeys", b.csrf, json.RawMessage(att)), 201, "/wallet/passkeys?added=1")
	auth.AddCredential(cred)
	wantStatus(t, "passkeys listed", b.get("/wallet/passkeys"), 200, "active")
	// The passkey is step-up's: the API lists it too.
	if l := w.ok(200, w.call("GET", "/v1/passkeys", w.userKey, "", nil)); !strings.Contains(string(l.raw), `"revoked_at":null`) {
		t.Fatalf("API list: %s", l.raw)
	}
	b.form("/wallet/signout", url.Values{})

	signin := func(b *browser) (string, wpage) {
		b.get("/wallet/signin")
		o := b.fetch("/wallet/signin/passkey/options", b.csrf, map[string]any{})
		wantStatus(t, "sign-in options", o, 200, `"challenge"`)
		ro, err := virtualwebauthn.ParseAssertionOptions(o.body)
		if err != nil {
			t.Fatal(err)
		}
		as := virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *ro)
		return as, b.fetch("/wallet/signin/passkey?next=%2Fwallet%2Fpasskeys", b.csrf, json.RawMessage(as))
	}
	as, r := signin(b)
	wantStatus(t, "passkey sign-in", r, 200, `"redirect":"/wallet/passkeys"`)
	wantStatus(t, "signed in by passkey", b.get("/wallet/passkeys"), 200, w.user)

	// The same assertion again: its challenge was used.
	b2 := newBrowser(t, w.m.URL())
	b2.get("/wallet/signin")
	wantStatus(t, "replayed assertion", b2.fetch("/wallet/signin/passkey", b2.csrf, json.RawMessage(as)), 400, "expired or was already used")
	wantStatus(t, "options without token", b2.fetch("/wallet/signin/passkey/options", "", map[string]any{}), 403, "did not come from this wallet")
	if b2.sessionCookie() != nil {
		t.Fatal("a refused passkey sign-in left a session")
	}

	// Revoked, the passkey signs nobody in.
	ids := w.ok(200, w.call("GET", "/v1/passkeys", w.userKey, "", nil)).body["data"].([]any)
	w.ok(200, w.call("POST", "/v1/passkeys/"+ids[0].(map[string]any)["id"].(string)+"/revoke", w.userKey, "", nil))
	b3 := newBrowser(t, w.m.URL())
	_, r = signin(b3)
	wantStatus(t, "revoked passkey", r, 400, "that passkey was not accepted")
	if b3.sessionCookie() != nil {
		t.Fatal("a revoked passkey left a session")
	}
}
