package sqlstore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A replay returns exactly the bytes first answered: every body, whatever
// it starts with and however well it compresses, reads back unchanged.
func TestIdempotencyBodyRoundTrip(t *testing.T) {
	random := make([]byte, 4096)
	rand.Read(random)
	session := []byte(`{"id":"cs_1","capabilities":{"payment":{"handlers":[` + strings.Repeat(`{"id":"paybound_agent_card","psp":"paybound"},`, 20) + `{}]}}}`)
	for name, body := range map[string][]byte{
		"empty":                           {},
		"short JSON":                      []byte(`{"id":"vt_1"}`),
		"session":                         session,
		"incompressible":                  random,
		"marked, short":                   {0, 'z', 1},
		"marked, long":                    append([]byte{0, 'z'}, random...),
		"marked, session":                 append([]byte{0, 'z'}, session...),
		"mark alone":                      {0, 'z'},
		"NUL, not the mark":               append([]byte{0, 'y'}, session...),
		"dictionary mark":                 append(slices.Clone(dictMark), session...),
		"dictionary mark, incompressible": append(slices.Clone(dictMark), random...),
		"payment":                         []byte(paymentJSON),
	} {
		for _, enc := range []struct {
			name string
			f    func([]byte) []byte
		}{{"Deflate", Deflate}, {"Compact", Compact}} {
			stored := enc.f(body)
			got, err := Inflate(stored)
			if err != nil {
				t.Errorf("%s of %s: %v", enc.name, name, err)
				continue
			}
			if !bytes.Equal(got, body) {
				t.Errorf("%s of %s: read back %d bytes %q..., stored %d bytes", enc.name, name, len(got), got[:min(len(got), 16)], len(body))
			}
		}
	}
	if n := len(Deflate(session)); n >= len(session)/2 {
		t.Errorf("a session's %d bytes are stored in %d", len(session), n)
	}
	for _, enc := range []func([]byte) []byte{Deflate, Compact} {
		if got := enc(random); !bytes.Equal(got, random) {
			t.Errorf("an incompressible body is stored deflated (%d bytes for %d)", len(got), len(random))
		}
	}
	// A value stored raw before dictMark existed that begins with its
	// first bytes reads back as it is.
	if got, err := Inflate([]byte{0, 'y', 1, 2}); err != nil || !bytes.Equal(got, []byte{0, 'y', 1, 2}) {
		t.Errorf("a raw value beginning 0 'y' read back as %q, %v", got, err)
	}
	// With the dictionary, a payment's response is stored in under half
	// of what plain deflate takes.
	if c, d := len(Compact([]byte(paymentJSON))), len(Deflate([]byte(paymentJSON))); c*2 > d {
		t.Errorf("a payment's %d bytes: Compact %d, Deflate %d", len(paymentJSON), c, d)
	}
}

// paymentJSON is a payment's response as the API renders it.
const paymentJSON = `{"id":"pay_01m93f6jzzrexm9y6x918nejmf","object":"payment","status":"captured","amount":100,"amount_captured":100,` +
	`"amount_refunded":0,"fee_amount":0,"currency":"USD","merchant_id":"mch_01m93f6ffazw67k2f0jrvf4q4h","payer_id":"usr_01m93f6fp0tm2ek8xgqw5j7trx",` +
	`"agent_id":"agt_01m93f6fzb9p3srvmseanwfw5b","mandate_id":"mdt_01m93f6fzde788egx6v587ztgr","description":"","capture_method":"automatic",` +
	`"authorization_expires_at":"2026-12-12T16:04:39Z","metadata":{},"created_at":"2026-12-05T16:04:39Z","assurance":"signed",` +
	`"risk":{"decision":"allow","signals":[{"name":"new_merchant"}]}}`

// TestJSONDictUnchanged: the stored values Compact wrote are read with
// jsonDict as it was; a change would make them unreadable (a new
// dictionary needs a mark of its own).
func TestJSONDictUnchanged(t *testing.T) {
	const want = "e3de7476a120f56691fe4467a718f450eceff41b5d40c8b62fa8db6aae1a6957"
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(jsonDict))); got != want {
		t.Fatalf("jsonDict's SHA-256 is %s, was %s: values stored with it would not read back", got, want)
	}
}

func BenchmarkCompact(b *testing.B) {
	for _, enc := range []struct {
		name string
		f    func([]byte) []byte
	}{{"Deflate", Deflate}, {"Compact", Compact}} {
		b.Run(enc.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				n = len(enc.f([]byte(paymentJSON)))
			}
			b.ReportMetric(float64(n), "bytes")
		})
	}
}

// A damaged compressed body is an error, not a wrong replay.
func TestIdempotencyBodyDamaged(t *testing.T) {
	stored := Deflate([]byte(strings.Repeat(`{"status":"ready_for_payment"}`, 20)))
	if _, err := Inflate(stored[:len(stored)/2]); err == nil {
		t.Error("a truncated body inflated")
	}
	// A bomb: far more zeros than a response could be.
	bomb := Deflate(make([]byte, maxInflated+1))
	if _, err := Inflate(bomb); err == nil {
		t.Error("a body past the limit inflated")
	}
}
