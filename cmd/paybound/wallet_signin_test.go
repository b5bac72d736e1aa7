package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/wallet"
)

// signInCode signs b in with code for user through the code form.
func (b *browser) signInCode(user, code string) wpage {
	b.t.Helper()
	b.get("/wallet/signin")
	return b.form("/wallet/signin/code", url.Values{"user_id": {user}, "code": {code}})
}

// newSignInCode asks for a code with key through the API.
func (w *world) newSignInCode(key string) string {
	w.t.Helper()
	r := w.ok(201, w.call("POST", "/v1/signin_codes", key, "-", nil))
	if r.str("user_id") != w.user || len(r.str("code")) != 8 || r.str("object") != "signin_code" {
		w.t.Fatalf("sign-in code: %s", r.raw)
	}
	return r.str("code")
}

// TestWalletSignInCode: a person asks for a code with their key and signs
// in with it, once; then the wallet offers a passkey. An expired code, a
// used one, one voided by a newer code, and a code without the CSRF token
// are refused; an agent or merchant key gets no code.
func TestWalletSignInCode(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	wantStatus(t, "agent asks for a code", resp2page(w.call("POST", "/v1/signin_codes", w.agentKey, "-", nil)), 403, "forbidden")
	wantStatus(t, "merchant asks for a code", resp2page(w.call("POST", "/v1/signin_codes", w.merchKey, "-", nil)), 403, "forbidden")
	wantStatus(t, "no key", resp2page(w.call("POST", "/v1/signin_codes", "", "-", nil)), 401, "unauthenticated")

	code := w.newSignInCode(w.userKey)
	b := newBrowser(t, w.m.URL())
	wantStatus(t, "sign-in page", b.get("/wallet/signin"), 200, "With a one-time code")
	wantStatus(t, "no CSRF token", b.form("/wallet/signin/code", url.Values{"user_id": {w.user}, "code": {code}, "csrf": {""}}), 403, "did not come from this wallet")
	wantStatus(t, "malformed code", b.signInCode(w.user, "12ab"), 400, "the code is 8 digits")
	wantStatus(t, "malformed user", b.signInCode("ada", code), 400, "enter your user ID")
	r := b.signInCode(w.user, code[:4]+" "+code[4:]) // typed with a space
	if r.status != 303 || r.header.Get("Location") != "/wallet/?welcome=code" {
		t.Fatalf("code sign-in: %d %v %s", r.status, r.header, r.body)
	}
	wantStatus(t, "offered a passkey", b.get("/wallet/?welcome=code"), 200, "Signed in with a one-time code. <a href=\"/wallet/passkeys\">Register a passkey</a>")
	wantStatus(t, "signed in", b.get("/wallet/passkeys"), 200, w.user)

	// Used once: the same code again is refused, and counts.
	b2 := newBrowser(t, w.m.URL())
	wantStatus(t, "reused code", b2.signInCode(w.user, code), 401, "wrong, expired or already used; 4 more wrong codes")
	if b2.sessionCookie() != nil {
		t.Fatal("a used code left a session")
	}
	// A newer code voids the older.
	old := w.newSignInCode(w.userKey)
	fresh := w.newSignInCode(w.userKey)
	if old != fresh {
		wantStatus(t, "voided code", b2.signInCode(w.user, old), 401, "3 more wrong codes")
	}
	// Expired: 10 minutes after it was made.
	clock.Advance(10*time.Minute + time.Second)
	wantStatus(t, "expired code", b2.signInCode(w.user, fresh), 401, "wrong, expired or already used")
	if b2.sessionCookie() != nil {
		t.Fatal("an expired code left a session")
	}
	// A right code clears the count.
	wantStatus(t, "a right code after failures", b2.signInCode(w.user, w.newSignInCode(w.userKey)), 303, "")
	b3 := newBrowser(t, w.m.URL())
	wantStatus(t, "count cleared", b3.signInCode(w.user, "00000000"), 401, "4 more wrong codes")
	w.verify()
}

// TestWalletSignInCodeLockout: five wrong codes lock the user's codes for
// 15 minutes, visibly; while locked even the right code is refused, and a
// restart of the server (the same database) does not unlock them: the
// count is in the store. Another user is not locked, and their key still
// signs them in. When the lock ends, a code signs in again.
func TestWalletSignInCodeLockout(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	dir := t.TempDir()
	m := startMain(t, dir, func(m *Main) { m.Clock = clock })
	a := &api{t: t, base: m.URL()}
	newUser := func(name string) (id, key string) {
		u := a.ok(201, a.call("POST", "/v1/users", m.OperatorKey, "", map[string]any{"name": name}))
		return u.str("id"), u.str("api_key")
	}
	ada, adaKey := newUser("Ada")
	bo, boKey := newUser("Bo")
	code := a.ok(201, a.call("POST", "/v1/signin_codes", adaKey, "-", nil)).str("code")
	wrong := "00000000"
	if code == wrong {
		wrong = "11111111"
	}
	b := newBrowser(t, m.URL())
	for i := 1; i < 5; i++ {
		wantStatus(t, "wrong code", b.signInCode(ada, wrong), 401, fmt.Sprintf("%d more wrong codes lock", 5-i))
	}
	until := clock.Now().Add(15 * time.Minute).UTC().Format("15:04")
	r := b.signInCode(ada, wrong)
	wantStatus(t, "the 5th wrong code", r, 429, "locked until "+until+" UTC after 5 wrong codes")
	if ra := r.header.Get("Retry-After"); ra != "901" && ra != "900" {
		t.Fatalf("Retry-After of a 15-minute lock: %q", ra)
	}
	wantStatus(t, "the right code while locked", b.signInCode(ada, code), 429, "locked until "+until)
	if b.sessionCookie() != nil {
		t.Fatal("a locked sign-in left a session")
	}
	bob := newBrowser(t, m.URL())
	wantStatus(t, "another user", bob.signInCode(bo, a.ok(201, a.call("POST", "/v1/signin_codes", boKey, "-", nil)).str("code")), 303, "")

	// An ID that names no user is answered exactly as a user's: the tries
	// left go down, then a lock, so the answers do not tell who exists.
	nobody := "usr_" + strings.Repeat("0", 26)
	g := newBrowser(t, m.URL())
	for i := 1; i < 5; i++ {
		wantStatus(t, "wrong code for no user", g.signInCode(nobody, wrong), 401, fmt.Sprintf("%d more wrong codes lock", 5-i))
	}
	wantStatus(t, "the 5th wrong code for no user", g.signInCode(nobody, wrong), 429, "locked until "+until+" UTC after 5 wrong codes")
	wantStatus(t, "no user, locked", g.signInCode(nobody, code), 429, "locked until "+until)

	// A restart on the same database: still locked, the right code too.
	m.Close()
	m = startMain(t, dir, func(m *Main) { m.Clock = clock })
	a = &api{t: t, base: m.URL()}
	b = newBrowser(t, m.URL())
	wantStatus(t, "the right code after a restart", b.signInCode(ada, code), 429, "locked until "+until)
	code = a.ok(201, a.call("POST", "/v1/signin_codes", adaKey, "-", nil)).str("code") // asking does not unlock
	wantStatus(t, "a new code while locked", b.signInCode(ada, code), 429, "locked until "+until)
	b.signIn(adaKey) // the key still signs in
	b = newBrowser(t, m.URL())

	clock.Advance(15 * time.Minute)
	code = a.ok(201, a.call("POST", "/v1/signin_codes", adaKey, "-", nil)).str("code")
	wantStatus(t, "after the lock", b.signInCode(ada, code), 303, "")
	wantStatus(t, "signed in", b.get("/wallet/passkeys"), 200, ada)
}

// resp2page is an API answer as a wallet page, for wantStatus.
func resp2page(r resp) wpage { return wpage{status: r.status, header: r.header, body: string(r.raw)} }

// TestWalletKeySignInLimit: wrong API keys from one address are refused
// with 429 once MaxKeyFailures of them fall within the window, even a
// right key; the limit is per address, in memory.
func TestWalletKeySignInLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b := newBrowser(t, w.m.URL())
	b.get("/wallet/signin")
	for range wallet.MaxKeyFailures {
		wantStatus(t, "bad key", b.form("/wallet/signin", url.Values{"api_key": {"pbk_nope"}}), 401, "That key was not accepted")
	}
	r := b.form("/wallet/signin", url.Values{"api_key": {w.userKey}})
	wantStatus(t, "right key after too many wrong ones", r, 429, "Too many keys were refused from your address")
	if r.header.Get("Retry-After") == "" || b.sessionCookie() != nil {
		t.Fatalf("limited sign-in: Retry-After %q, session %v", r.header.Get("Retry-After"), b.sessionCookie())
	}
	// A code sign-in is not this limit's: it has its own, per user.
	wantStatus(t, "code sign-in from the same address", b.signInCode(w.user, w.newSignInCode(w.userKey)), 303, "")
}
