package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/stepup"
)

// TestTOTPEnrolment: a user enrolls a one-time-code factor, activates it
// with a current code once, and cannot replace it afterwards.
func TestTOTPEnrolment(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	if r := w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": "123456"}); r.status != 409 || r.errField("code") != "totp_state" {
		t.Fatalf("verify before enrolling: %d %s", r.status, r.raw)
	}
	e := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "enrol-1", nil))
	secret, err := stepup.DecodeTOTPSecret(e.str("secret"))
	if err != nil || e.body["active"] != false || e.str("otpauth_url") == "" {
		t.Fatalf("enrolment: %s %v", e.raw, err)
	}
	// The secret is stored sealed.
	f, err := w.m.Service.Store().TOTP(context.Background(), w.user)
	if err != nil || bytes.Contains(f.Secret, secret) || !bytes.HasPrefix(f.Secret, []byte("pbseal1:")) {
		t.Fatalf("stored factor: %q %v", f.Secret, err)
	}
	// A retry with the key gets the same secret back.
	if again := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "enrol-1", nil)); again.str("secret") != e.str("secret") {
		t.Fatalf("the retried enrolment differs: %s", again.raw)
	}
	wrong := "000000"
	if stepup.TOTPCode(secret, clock.Now()) == wrong {
		wrong = "111111"
	}
	if r := w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": wrong}); r.status != 400 || r.errField("code") != "totp_invalid" {
		t.Fatalf("wrong code: %d %s", r.status, r.raw)
	}
	for _, bad := range []map[string]any{{}, {"code": "12345"}, {"code": 123456}} {
		if r := w.call("POST", "/v1/totp/verify", w.userKey, "", bad); r.status != 400 {
			t.Fatalf("%v: %d %s", bad, r.status, r.raw)
		}
	}
	code := stepup.TOTPCode(secret, clock.Now())
	if v := w.ok(200, w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": code})); v.body["active"] != true {
		t.Fatalf("verify: %s", v.raw)
	}
	// Active now: the same code again, or a new enrolment, is refused.
	if r := w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": code}); r.status != 409 {
		t.Fatalf("verify again: %d %s", r.status, r.raw)
	}
	if r := w.call("POST", "/v1/totp", w.userKey, "", nil); r.status != 409 || r.errField("code") != "totp_state" {
		t.Fatalf("re-enrolment over an active factor: %d %s", r.status, r.raw)
	}
	for _, key := range []string{w.agentKey, w.merchKey, w.op} {
		if r := w.call("POST", "/v1/totp", key, "", nil); r.status != 403 {
			t.Fatalf("non-user enrolls: %d %s", r.status, r.raw)
		}
	}
}

// TestConfirmationFlow: an agent pays without a mandate → the payment waits
// → the user approves it with a one-time code → authorized → the merchant
// captures. Wrong, replayed and foreign approvals fail and change nothing;
// a denial cancels; an unanswered confirmation expires.
func TestConfirmationFlow(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	ask := func(amount int) resp {
		r := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": amount, "currency": "USD",
			"merchant_id": w.merch, "capture_method": "manual"}))
		if r.str("status") != "requires_confirmation" {
			t.Fatalf("agent payment: %s", r.raw)
		}
		return r
	}
	cfm := func(r resp) string { return r.body["confirmation"].(map[string]any)["id"].(string) }
	p := ask(2000)
	if av, pend := w.balance(w.userKey, "USD"); av != 50000 || pend != 0 {
		t.Fatalf("a payment waiting for confirmation holds money: %d %d", av, pend)
	}
	// Without a factor the user cannot approve.
	if r := w.call("POST", "/v1/confirmations/"+cfm(p)+"/approve", w.userKey, "", map[string]any{"totp": "123456"}); r.status != 409 || r.errField("code") != "totp_state" {
		t.Fatalf("approve without a factor: %d %s", r.status, r.raw)
	}
	e := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "", nil))
	secret, _ := stepup.DecodeTOTPSecret(e.str("secret"))
	w.ok(200, w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": stepup.TOTPCode(secret, clock.Now())}))
	clock.Advance(stepup.TOTPStep) // a fresh step: the enrolment's code is spent
	code := stepup.TOTPCode(secret, clock.Now())
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for _, c := range []struct {
		key, id, totp string
		status        int
		errCode       string
	}{
		{w.userKey, cfm(p), wrong, 400, "totp_invalid"},
		{w.agentKey, cfm(p), code, 403, "forbidden"},
		{w.merchKey, cfm(p), code, 403, "forbidden"},
		{w.userKey, "cfm_00000000000000000000000000", code, 404, "resource_missing"},
		{w.userKey, cfm(p), "12345", 400, "parameter_invalid"},
	} {
		r := w.call("POST", "/v1/confirmations/"+c.id+"/approve", c.key, "", map[string]any{"totp": c.totp})
		if r.status != c.status || r.errField("code") != c.errCode {
			t.Fatalf("approve %+v: %d %s", c, r.status, r.raw)
		}
	}
	if g := w.ok(200, w.call("GET", "/v1/payments/"+p.str("id"), w.userKey, "", nil)); g.str("status") != "requires_confirmation" {
		t.Fatalf("failed approvals changed the payment: %s", g.raw)
	}
	a := w.ok(200, w.call("POST", "/v1/confirmations/"+cfm(p)+"/approve", w.userKey, "", map[string]any{"totp": code}))
	if a.str("status") != "authorized" {
		t.Fatalf("approved payment: %s", a.raw)
	}
	// The same code cannot approve another payment.
	p2 := ask(100)
	if r := w.call("POST", "/v1/confirmations/"+cfm(p2)+"/approve", w.userKey, "", map[string]any{"totp": code}); r.status != 400 || r.errField("code") != "totp_invalid" {
		t.Fatalf("replayed code: %d %s", r.status, r.raw)
	}
	// Approving twice: the payment no longer waits.
	clock.Advance(stepup.TOTPStep)
	if r := w.call("POST", "/v1/confirmations/"+cfm(p)+"/approve", w.userKey, "", map[string]any{"totp": stepup.TOTPCode(secret, clock.Now())}); r.status != 409 {
		t.Fatalf("second approval: %d %s", r.status, r.raw)
	}
	c := w.ok(200, w.call("POST", "/v1/payments/"+p.str("id")+"/capture", w.merchKey, "", nil))
	if c.str("status") != "captured" || c.num("amount_captured") != 2000 {
		t.Fatalf("capture: %s", c.raw)
	}
	// Deny.
	d := w.ok(200, w.call("POST", "/v1/confirmations/"+cfm(p2)+"/deny", w.userKey, "", nil))
	if d.str("status") != "canceled" {
		t.Fatalf("deny: %s", d.raw)
	}
	// Expiry: the sweeper expires an unanswered confirmation.
	p3 := ask(100)
	clock.Advance(pb.ConfirmationTTL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := w.ok(200, w.call("GET", "/v1/payments/"+p3.str("id"), w.userKey, "", nil))
		if g.str("status") == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unconfirmed payment not expired: %s", g.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if av, pend := w.balance(w.userKey, "USD"); av != 50000-2000 || pend != 0 {
		t.Fatalf("wallet: %d %d", av, pend)
	}
	w.verify()
}

// TestWaitForConfirmation: an agent waiting on GET ?wait= gets the payment
// as soon as the user approves it.
func TestWaitForConfirmation(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 40, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	e := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "", nil))
	secret, _ := stepup.DecodeTOTPSecret(e.str("secret"))
	w.ok(200, w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": stepup.TOTPCode(secret, clock.Now().Add(-stepup.TOTPStep))}))
	p := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch}))
	got := make(chan resp, 1)
	start := time.Now()
	go func() { got <- w.call("GET", "/v1/payments/"+p.str("id")+"?wait=20s", w.agentKey, "", nil) }()
	time.Sleep(300 * time.Millisecond)
	cfm := p.body["confirmation"].(map[string]any)["id"].(string)
	w.ok(200, w.call("POST", "/v1/confirmations/"+cfm+"/approve", w.userKey, "", map[string]any{"totp": stepup.TOTPCode(secret, clock.Now())}))
	r := <-got
	if r.status != 200 || r.str("status") != "captured" || time.Since(start) > 10*time.Second {
		t.Fatalf("waited %s for %d %s", time.Since(start), r.status, r.raw)
	}
	for _, bad := range []string{"forever", "-1s", "31s"} {
		if r := w.call("GET", "/v1/payments/"+p.str("id")+"?wait="+bad, w.agentKey, "", nil); r.status != 400 || r.errField("param") != "wait" {
			t.Fatalf("wait=%s: %d %s", bad, r.status, r.raw)
		}
	}
	// Not waiting for anything: answered at once.
	t0 := time.Now()
	w.ok(200, w.call("GET", "/v1/payments/"+p.str("id")+"?wait=20s", w.agentKey, "", nil))
	if time.Since(t0) > 5*time.Second {
		t.Fatal("a settled payment made the caller wait")
	}
}

// TestCodeGuessingOverHTTP: wrong one-time codes lock a confirmation
// (403 confirmation_locked) and then rate-limit the user (429 with
// Retry-After and the JSON error shape); the payment keeps waiting.
func TestCodeGuessingOverHTTP(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	ask := func() string {
		r := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch}))
		if r.str("status") != "requires_confirmation" {
			t.Fatalf("agent payment: %s", r.raw)
		}
		return r.body["confirmation"].(map[string]any)["id"].(string)
	}
	e := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "", nil))
	secret, _ := stepup.DecodeTOTPSecret(e.str("secret"))
	w.ok(200, w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": stepup.TOTPCode(secret, clock.Now())}))
	clock.Advance(stepup.TOTPStep)
	right := stepup.TOTPCode(secret, clock.Now())
	wrong := func(i int) string {
		c := fmt.Sprintf("%06d", 100000+i)
		if c == right {
			c = fmt.Sprintf("%06d", 200000+i)
		}
		return c
	}
	approve := func(cfm, code string) resp {
		return w.call("POST", "/v1/confirmations/"+cfm+"/approve", w.userKey, "", map[string]any{"totp": code})
	}
	first := ask()
	for i := range 5 {
		if r := approve(first, wrong(i)); r.status != 400 || r.errField("code") != "totp_invalid" {
			t.Fatalf("wrong code %d: %d %s", i, r.status, r.raw)
		}
	}
	if r := approve(first, right); r.status != 403 || r.errField("code") != "confirmation_locked" {
		t.Fatalf("the right code on a locked confirmation: %d %s", r.status, r.raw)
	}
	second := ask()
	for i := range 5 {
		if r := approve(second, wrong(10+i)); r.status != 400 || r.errField("code") != "totp_invalid" {
			t.Fatalf("wrong code %d on another confirmation: %d %s", i, r.status, r.raw)
		}
	}
	r := approve(ask(), right)
	if r.status != 429 || r.errField("type") != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("the 11th code in the window: %d %v %s", r.status, r.header, r.raw)
	}
	if g := w.ok(200, w.call("GET", "/v1/payments?limit=100", w.userKey, "", nil)); strings.Contains(string(g.raw), `"status":"authorized"`) {
		t.Fatalf("a guess approved something: %s", g.raw)
	}
	w.verify()
}

// TestPendingConfirmations: GET /v1/confirmations lists what waits for the
// user, newest first and paged, without what was answered or ran out; it
// is the user's alone.
func TestPendingConfirmations(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	var ids []string
	for i := range 3 {
		r := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 100 + i, "currency": "USD", "merchant_id": w.merch}))
		ids = append(ids, r.body["confirmation"].(map[string]any)["id"].(string))
		clock.Advance(time.Minute)
	}
	list := func(query string) resp {
		return w.ok(200, w.call("GET", "/v1/confirmations"+query, w.userKey, "", nil))
	}
	got := func(r resp) (out []string) {
		for _, c := range r.body["data"].([]any) {
			out = append(out, c.(map[string]any)["id"].(string))
		}
		return out
	}
	p1 := list("?status=pending&limit=2")
	if g := got(p1); len(g) != 2 || g[0] != ids[2] || g[1] != ids[1] || p1.body["has_more"] != true {
		t.Fatalf("first page: %s", p1.raw)
	}
	first := p1.body["data"].([]any)[0].(map[string]any)
	if first["status"] != "pending" || first["payment"].(map[string]any)["amount"].(float64) != 102 {
		t.Fatalf("a confirmation: %v", first)
	}
	if g := got(list("?limit=2&starting_after=" + ids[1])); len(g) != 1 || g[0] != ids[0] {
		t.Fatalf("second page: %v", g)
	}
	w.ok(200, w.call("POST", "/v1/confirmations/"+ids[2]+"/deny", w.userKey, "", nil))
	if g := got(list("")); len(g) != 2 {
		t.Fatalf("after a deny: %v", g)
	}
	clock.Advance(pb.ConfirmationTTL - 2*time.Minute - 30*time.Second) // ids[0] ran out, ids[1] has 30s left
	if g := got(list("")); len(g) != 1 || g[0] != ids[1] {
		t.Fatalf("after the first ran out: %v", g)
	}
	for _, c := range []struct {
		key, query string
		status     int
		code       string
	}{
		{w.userKey, "?status=approved", 400, "parameter_invalid"},
		{w.userKey, "?starting_after=pay_0000", 400, "parameter_invalid"},
		{w.agentKey, "", 403, "forbidden"},
		{w.merchKey, "", 403, "forbidden"},
	} {
		if r := w.call("GET", "/v1/confirmations"+c.query, c.key, "", nil); r.status != c.status || r.errField("code") != c.code {
			t.Errorf("GET /v1/confirmations%s: %d %s", c.query, r.status, r.raw)
		}
	}
	other := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Bo"}))
	if r := w.ok(200, w.call("GET", "/v1/confirmations", other.str("api_key"), "", nil)); len(r.body["data"].([]any)) != 0 {
		t.Fatalf("another user sees %s", r.raw)
	}
}
