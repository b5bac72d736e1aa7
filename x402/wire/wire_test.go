package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHeaderRoundTrip(t *testing.T) {
	in := PaymentRequired{X402Version: 2, Resource: &Resource{URL: "https://s.example/q"},
		Accepts: []PaymentRequirements{{Scheme: SchemeExact, Network: "paybound:local", Amount: "10000", Asset: "USD", PayTo: "mch_x", MaxTimeoutSeconds: 60}}}
	h, err := EncodeHeader(in)
	if err != nil {
		t.Fatal(err)
	}
	var out PaymentRequired
	if err := DecodeHeader(h, &out); err != nil || out.Accepts[0].Amount != "10000" || out.Resource.URL != "https://s.example/q" {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	// The URL alphabet without padding reads the same.
	raw, _ := base64.StdEncoding.DecodeString(h)
	if err := DecodeHeader(base64.RawURLEncoding.EncodeToString(raw), &out); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"empty": "", "not base64": "%%%", "not JSON": base64.StdEncoding.EncodeToString([]byte("nope")),
		"trailing": base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2} {}`)),
		"too long": strings.Repeat("A", MaxHeaderBytes+4),
	} {
		if err := DecodeHeader(bad, &out); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestUnits(t *testing.T) {
	for _, c := range []struct {
		atomic    int64
		currency  string
		minor, rm int64
	}{{10000, "USD", 1, 0}, {1, "USD", 1, 9999}, {15000, "USD", 2, 5000}, {0, "USD", 0, 0},
		{1_000_000, "JPY", 1, 0}, {1000, "KWD", 1, 0}, {1_500_000, "JPY", 2, 500_000}} {
		minor, rem, err := MinorUnits(c.atomic, c.currency)
		if err != nil || minor != c.minor || rem != c.rm {
			t.Errorf("MinorUnits(%d %s) = %d, %d, %v; want %d, %d", c.atomic, c.currency, minor, rem, err, c.minor, c.rm)
		}
	}
	if a, err := AtomicUnits(250, "USD"); err != nil || a != 2_500_000 {
		t.Errorf("AtomicUnits(250 USD) = %d, %v", a, err)
	}
	for _, bad := range []string{"", "-1", "01", "1.5", "1e3", "99999999999999999999", " 1"} {
		if _, err := ParseAtomic(bad); err == nil {
			t.Errorf("ParseAtomic(%q) accepted", bad)
		}
	}
	if _, _, err := MinorUnits(1, "XAU"); err == nil {
		t.Error("XAU accepted")
	}
}

func TestAuthorizationSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Now().Unix()
	a := Authorization{From: Thumbprint(pub), Mandate: "mdt_1", To: "mch_1", Value: "10000", Asset: "USD",
		Resource: "https://s.example/q", ValidAfter: itoa(now - 5), ValidBefore: itoa(now + 60), Nonce: NewNonce()}
	s, err := Sign(priv, SchemeExact, "paybound:local", a)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(pub, SchemeExact, "paybound:local"); err != nil {
		t.Fatal(err)
	}
	// Another scheme, network, or any changed field does not verify.
	if s.Verify(pub, SchemeUpto, "paybound:local") == nil || s.Verify(pub, SchemeExact, "paybound:other") == nil {
		t.Error("the signature verified for another scheme or network")
	}
	for _, mut := range []func(*Authorization){
		func(a *Authorization) { a.To = "mch_2" }, func(a *Authorization) { a.Value = "10001" },
		func(a *Authorization) { a.Asset = "EUR" }, func(a *Authorization) { a.Resource += "x" },
		func(a *Authorization) { a.Nonce = NewNonce() }, func(a *Authorization) { a.Mandate = "mdt_2" },
		func(a *Authorization) { a.ValidBefore = itoa(now + 61) },
	} {
		c := *s
		mut(&c.Authorization)
		if err := c.Verify(pub, SchemeExact, "paybound:local"); err == nil {
			t.Errorf("a changed authorization verified: %+v", c.Authorization)
		}
	}
	// A window longer than MaxValidity, or a field with a newline, is refused.
	long := a
	long.ValidBefore = itoa(now + int64(MaxValidity/time.Second) + 10)
	if _, err := Sign(priv, SchemeExact, "paybound:local", long); err == nil {
		t.Error("a window past MaxValidity was signed")
	}
	nl := a
	nl.Resource = "https://s.example/q\nto=mch_2"
	if _, err := Sign(priv, SchemeExact, "paybound:local", nl); err == nil {
		t.Error("a field with a newline was signed")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestNewNonce: 32 bytes in hex, beginning with the milliseconds of its
// making, then random: two nonces differ, and nonces made a millisecond
// apart sort in the order they were made.
func TestNewNonce(t *testing.T) {
	before := time.Now().UnixMilli()
	a := NewNonce()
	after := time.Now().UnixMilli()
	raw, err := hex.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("NewNonce() = %q: %d bytes, %v; want 32 bytes of hex", a, len(raw), err)
	}
	var ms int64
	for _, c := range raw[:6] {
		ms = ms<<8 | int64(c)
	}
	if ms < before || ms > after {
		t.Fatalf("nonce %s begins with %d ms, made between %d and %d", a, ms, before, after)
	}
	time.Sleep(2 * time.Millisecond)
	if b := NewNonce(); b <= a || b[12:] == a[12:] {
		t.Fatalf("a later nonce %s does not sort after %s, or repeats its random part", b, a)
	}
}
