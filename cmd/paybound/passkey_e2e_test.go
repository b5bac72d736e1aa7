package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// TestPasskeyFlow drives the whole step-up flow over the real server with
// a virtual authenticator: an agent pays without a mandate, the payment
// waits; the user registers a passkey, approves that payment with it, and
// the merchant captures. Bad factors are refused and change nothing.
func TestPasskeyFlow(t *testing.T) {
	t.Parallel()
	rp := virtualwebauthn.RelyingParty{Name: "Paybound", ID: "pay.test", Origin: "https://pay.test"}
	w := newWorld(t, func(m *Main) { m.Config.PasskeyRPID, m.Config.PasskeyOrigin = rp.ID, rp.Origin })
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(w.user)})

	// Register.
	opts := w.ok(200, w.call("POST", "/v1/passkeys/registration", w.userKey, "-", nil))
	if !strings.Contains(string(opts.raw), `"name":"Ada"`) {
		t.Errorf("the options do not name the user: %s", opts.raw)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts.raw))
	if err != nil {
		t.Fatalf("creation options: %v %s", err, opts.raw)
	}
	cred := newCredential(t)
	att := virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)
	pk := w.ok(201, w.call("POST", "/v1/passkeys", w.userKey, "", map[string]any{"credential": json.RawMessage(att)}))
	if pk.str("object") != "passkey" || pk.str("id") == "" {
		t.Fatalf("passkey: %s", pk.raw)
	}
	auth.AddCredential(cred)
	if l := w.ok(200, w.call("GET", "/v1/passkeys", w.userKey, "", nil)); !strings.Contains(string(l.raw), `"id":"`+pk.str("id")+`"`) {
		t.Fatalf("list: %s", l.raw)
	}
	if r := w.call("GET", "/v1/passkeys", w.agentKey, "", nil); r.status != 403 {
		t.Fatalf("an agent listed passkeys: %d %s", r.status, r.raw)
	}
	if r := w.call("POST", "/v1/passkeys", w.userKey, "", map[string]any{"credential": json.RawMessage(att)}); r.status != 409 || r.errField("code") != "passkey_state" {
		t.Fatalf("registered twice: %d %s", r.status, r.raw)
	}

	pay := func() resp {
		return w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 1250, "currency": "USD",
			"merchant_id": w.merch, "capture_method": "manual"}))
	}
	p, other := pay(), pay()
	cfm := p.body["confirmation"].(map[string]any)["id"].(string)
	otherCfm := other.body["confirmation"].(map[string]any)["id"].(string)
	if p.str("status") != "requires_confirmation" {
		t.Fatalf("agent without mandate: %s", p.raw)
	}
	assertion := func(cfm string, a virtualwebauthn.Authenticator) json.RawMessage {
		o := w.ok(200, w.call("POST", "/v1/passkeys/assertion", w.userKey, "-", map[string]any{"confirmation_id": cfm}))
		ro, err := virtualwebauthn.ParseAssertionOptions(string(o.raw))
		if err != nil {
			t.Fatalf("request options: %v %s", err, o.raw)
		}
		return json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, a, cred, *ro))
	}
	noUV := auth
	noUV.Options.UserNotVerified = true
	for name, c := range map[string]struct {
		body any
		code string
	}{
		"another payment's assertion": {map[string]any{"passkey": assertion(otherCfm, auth)}, "passkey_invalid"},
		"no user verification":        {map[string]any{"passkey": assertion(cfm, noUV)}, "passkey_invalid"},
		"not an assertion":            {map[string]any{"passkey": map[string]any{"id": "x"}}, "passkey_invalid"},
		"both factors":                {map[string]any{"passkey": assertion(cfm, auth), "totp": "123456"}, "parameter_invalid"},
		"no factor":                   {map[string]any{}, "parameter_missing"},
	} {
		if r := w.call("POST", "/v1/confirmations/"+cfm+"/approve", w.userKey, "", c.body); r.status != 400 || r.errField("code") != c.code {
			t.Errorf("%s: %d %s; want 400 %s", name, r.status, r.raw, c.code)
		}
	}
	if g := w.ok(200, w.call("GET", "/v1/payments/"+p.str("id"), w.userKey, "", nil)); g.str("status") != "requires_confirmation" {
		t.Fatalf("refusals changed the payment: %s", g.raw)
	}

	good := assertion(cfm, auth)
	a := w.ok(200, w.call("POST", "/v1/confirmations/"+cfm+"/approve", w.userKey, "", map[string]any{"passkey": good}))
	if a.str("status") != "authorized" {
		t.Fatalf("approved: %s", a.raw)
	}
	if r := w.call("POST", "/v1/confirmations/"+cfm+"/approve", w.userKey, "", map[string]any{"passkey": good}); r.status != 409 || r.errField("code") != "payment_unexpected_state" {
		t.Fatalf("replayed assertion: %d %s", r.status, r.raw)
	}
	c := w.ok(200, w.call("POST", "/v1/payments/"+p.str("id")+"/capture", w.merchKey, "", nil))
	if c.str("status") != "captured" || c.num("amount_captured") != 1250 {
		t.Fatalf("capture: %s", c.raw)
	}
	if g := w.ok(200, w.call("GET", "/v1/payments/"+other.str("id"), w.userKey, "", nil)); g.str("status") != "requires_confirmation" {
		t.Fatalf("the other payment moved: %s", g.raw)
	}

	// Revoked (a lost phone), the passkey approves nothing more.
	late := assertion(otherCfm, auth)
	if r := w.call("POST", "/v1/passkeys/nosuchkey/revoke", w.userKey, "", nil); r.status != 404 {
		t.Fatalf("revoke an unknown passkey: %d %s", r.status, r.raw)
	}
	rv := w.ok(200, w.call("POST", "/v1/passkeys/"+pk.str("id")+"/revoke", w.userKey, "", nil))
	if rv.str("revoked_at") == "" {
		t.Fatalf("revoke: %s", rv.raw)
	}
	if again := w.ok(200, w.call("POST", "/v1/passkeys/"+pk.str("id")+"/revoke", w.userKey, "", nil)); again.str("revoked_at") != rv.str("revoked_at") {
		t.Fatalf("revoked twice: %s then %s", rv.raw, again.raw)
	}
	if r := w.call("POST", "/v1/confirmations/"+otherCfm+"/approve", w.userKey, "", map[string]any{"passkey": late}); r.status != 409 || r.errField("code") != "passkey_state" {
		t.Fatalf("a revoked passkey approved: %d %s", r.status, r.raw)
	}
	if r := w.call("POST", "/v1/passkeys/assertion", w.userKey, "-", map[string]any{"confirmation_id": otherCfm}); r.status != 409 {
		t.Fatalf("options with only a revoked passkey: %d %s", r.status, r.raw)
	}
	if l := w.ok(200, w.call("GET", "/v1/passkeys", w.userKey, "", nil)); !strings.Contains(string(l.raw), `"revoked_at":"`) {
		t.Fatalf("the revoked passkey is not listed as revoked: %s", l.raw)
	}
	w.verify()
}

// newCredential is a virtual passkey with full-length coordinates (see the
// one in internal/service's tests).
func newCredential(t testing.TB) virtualwebauthn.Credential {
	t.Helper()
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(cred.Key.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ek := k.(*ecdsa.PrivateKey); len(ek.X.Bytes()) == 32 && len(ek.Y.Bytes()) == 32 {
			return cred
		}
	}
}
