package sqlstore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
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
	// Against the dictionary, a payment's response is stored in under
	// three fifths of what deflate takes.
	if c, d := len(Compact([]byte(paymentJSON))), len(Deflate([]byte(paymentJSON))); c*5 > d*3 {
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
	for _, enc := range []func([]byte) []byte{Deflate, Compact} {
		stored := enc([]byte(strings.Repeat(`{"status":"ready_for_payment"}`, 20)))
		for cut := len(stored) - 1; cut > len(dictMark); cut-- {
			if got, err := Inflate(stored[:cut]); err == nil {
				t.Fatalf("a body truncated to %d of %d bytes read back as %q", cut, len(stored), got)
			}
		}
	}
	for _, bad := range [][]byte{
		append(slices.Clone(dictMark), 5, 3, 0),                      // a copy of 5 from 0 back
		append(slices.Clone(dictMark), 5, 3, 0xff, 0x7f),             // from before the dictionary
		append(slices.Clone(dictMark), 2, 6, 'a'),                    // a literal run past the end
		append(slices.Clone(dictMark), 0xff, 0xff, 0xff, 0xff, 0x7f), // a length past the limit
	} {
		if got, err := Inflate(bad); err == nil {
			t.Errorf("the damaged value %v read back as %q", bad, got)
		}
	}
	// A bomb: far more zeros than a response could be.
	bomb := Deflate(make([]byte, maxInflated+1))
	if _, err := Inflate(bomb); err == nil {
		t.Error("a body past the limit inflated")
	}
}

// TestCompactRoundTrip: values made of pieces of the dictionary, repeats
// of themselves and random bytes read back exactly.
func TestCompactRoundTrip(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(4, 12))
	for range 3000 {
		var v []byte
		for range rng.IntN(12) {
			switch rng.IntN(3) {
			case 0:
				i := rng.IntN(len(jsonDict))
				v = append(v, jsonDict[i:min(len(jsonDict), i+rng.IntN(80))]...)
			case 1:
				if len(v) > 0 {
					i := rng.IntN(len(v))
					v = append(v, v[i:min(len(v), i+rng.IntN(40))]...)
				}
			default:
				for range rng.IntN(30) {
					v = append(v, byte(rng.IntN(256)))
				}
			}
		}
		got, err := Inflate(Compact(v))
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("%q read back as %q, %v", v, got, err)
		}
	}
}

// FuzzCompact: every value reads back as given, and any bytes behind the
// mark unpack or are refused, never panic.
func FuzzCompact(f *testing.F) {
	for _, seed := range []string{paymentJSON, jsonDict, "", "\x00z\x06abc"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if got, err := Inflate(Compact(v)); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("%q read back as %q, %v", v, got, err)
		}
		Inflate(append(slices.Clone(dictMark), v...))
	})
}
