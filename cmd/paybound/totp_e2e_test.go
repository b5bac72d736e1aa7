package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/stepup"
)

// TestTOTPEnrolment: a user enrolls a one-time-code factor, activates it
// with a current code once, and cannot replace it afterwards.
func TestTOTPEnrolment(t *testing.T) {
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
