package httpsig

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// RFC 9421 appendix B.1.4's test-key-ed25519.
func rfcKey(t *testing.T) ed25519.PrivateKey {
	seed, err := hex.DecodeString("9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5")
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func b26Request() *http.Request {
	r := httptest.NewRequest("POST", "http://example.com/foo?param=Value&Pet=dog", strings.NewReader(`{"hello": "world"}`))
	r.Header.Set("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Length", "18")
	return r
}

const b26Sig = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="

// TestRFC9421B26 reproduces appendix B.2.6 byte for byte (Ed25519 is
// deterministic) and verifies it.
func TestRFC9421B26(t *testing.T) {
	r := b26Request()
	p := Params{Components: []string{"date", "@method", "@path", "@authority", "content-type", "content-length"},
		Created: time.Unix(1618884473, 0), KeyID: "test-key-ed25519"}
	if err := Sign(r, "https", "sig-b26", p, rfcKey(t)); err != nil {
		t.Fatal(err)
	}
	wantInput := `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	if got := r.Header.Get("Signature-Input"); got != wantInput {
		t.Fatalf("Signature-Input\n got %s\nwant %s", got, wantInput)
	}
	if got := r.Header.Get("Signature"); got != "sig-b26=:"+b26Sig+":" {
		t.Fatalf("Signature\n got %s\nwant sig-b26=:%s:", got, b26Sig)
	}
	sigs, err := Parse(r.Header)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("Parse: %v %v", sigs, err)
	}
	base, _ := Base(r, "https", &sigs[0])
	wantBase := `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	if string(base) != wantBase {
		t.Fatalf("base\n%s\nwant\n%s", base, wantBase)
	}
	pub := rfcKey(t).Public()
	if err := Verify(r, "https", &sigs[0], pub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Any change to a covered part fails.
	for name, mutate := range map[string]func(*http.Request){
		"method":       func(r *http.Request) { r.Method = "PUT" },
		"path":         func(r *http.Request) { r.URL.Path = "/fo0" },
		"authority":    func(r *http.Request) { r.Host = "example.org" },
		"date":         func(r *http.Request) { r.Header.Set("Date", "Tue, 20 Apr 2021 02:07:56 GMT") },
		"content-type": func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") },
	} {
		m := b26Request()
		m.Header.Set("Signature-Input", r.Header.Get("Signature-Input"))
		m.Header.Set("Signature", r.Header.Get("Signature"))
		mutate(m)
		s, err := Parse(m.Header)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(m, "https", &s[0], pub); !errors.Is(err, ErrInvalid) {
			t.Errorf("changed %s: Verify = %v, want ErrInvalid", name, err)
		}
	}
}

type vector struct {
	Key            map[string]string `json:"key"`
	TargetURL      string            `json:"target_url"`
	Label          string            `json:"label"`
	Signature      string            `json:"signature"`
	SignatureInput string            `json:"signature_input"`
	SignatureAgent string            `json:"signature_agent"`
	CreatedMS      int64             `json:"created_ms"`
	ExpiresMS      int64             `json:"expires_ms"`
}

func jwkPublic(t *testing.T, k map[string]string) crypto.PublicKey {
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	switch k["kty"] {
	case "OKP":
		return ed25519.PublicKey(dec(k["x"]))
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(dec(k["n"])), E: int(new(big.Int).SetBytes(dec(k["e"])).Int64())}
	}
	t.Fatalf("key type %q", k["kty"])
	return nil
}

func vectorRequest(v vector) *http.Request {
	r := httptest.NewRequest("GET", v.TargetURL, nil)
	r.Header.Set("Signature-Input", v.SignatureInput)
	r.Header.Set("Signature", v.Signature)
	if v.SignatureAgent != "" {
		r.Header.Set("Signature-Agent", v.SignatureAgent)
	}
	return r
}

// TestWebBotAuthVectors accepts every vector of the Web Bot Auth
// architecture drafts, and rejects each once any byte is changed.
func TestWebBotAuthVectors(t *testing.T) {
	// Copied from the shared conformance data, with its licence and the
	// commit it came from: a fresh clone needs nothing beside it.
	dir := filepath.Join("testdata", "web-bot-auth")
	n := 0
	for _, file := range []string{"web_bot_auth_architecture_v1.json", "web_bot_auth_architecture_v2.json"} {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatalf("the conformance vectors must be at %s: %v", dir, err)
		}
		var vs []vector
		if err := json.Unmarshal(raw, &vs); err != nil {
			t.Fatal(err)
		}
		for i, v := range vs {
			n++
			pub := jwkPublic(t, v.Key)
			r := vectorRequest(v)
			sigs, err := Parse(r.Header)
			if err != nil || len(sigs) != 1 || sigs[0].Label != v.Label {
				t.Fatalf("%s #%d: Parse: %+v %v", file, i, sigs, err)
			}
			s := sigs[0]
			if s.Tag != "web-bot-auth" || s.Created.UnixMilli() != v.CreatedMS || s.Expires.UnixMilli() != v.ExpiresMS || s.KeyID == "" || s.Nonce == "" {
				t.Fatalf("%s #%d: parameters %+v", file, i, s.Params)
			}
			if err := Verify(r, "https", &s, pub); err != nil {
				t.Fatalf("%s #%d: Verify: %v", file, i, err)
			}
			if err := s.Check(time.UnixMilli(v.CreatedMS).Add(time.Minute), 100*365*24*time.Hour, time.Minute); err != nil {
				t.Fatalf("%s #%d: Check: %v", file, i, err)
			}
			// Flip each character of the signed parts in turn: nothing that
			// was signed may change unnoticed.
			for _, field := range []string{"Signature", "Signature-Input", "Signature-Agent", "authority"} {
				orig := r.Header.Get(field)
				if field == "authority" {
					orig = r.Host
				}
				for j := range len(orig) {
					m := vectorRequest(v)
					changed := []byte(orig)
					changed[j] ^= 0x01
					if field == "authority" {
						m.Host = string(changed)
					} else {
						m.Header.Set(field, string(changed))
					}
					sigs, err := Parse(m.Header)
					if err != nil {
						continue // no longer parses: refused
					}
					if err := Verify(m, "https", &sigs[0], pub); err == nil {
						t.Fatalf("%s #%d: %s with byte %d changed (%q) still verifies", file, i, field, j, changed)
					}
				}
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d vectors read", n)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, h := range map[string][2]string{
		"no label in Signature": {`a=("@method");created=1`, `b=:AAAA:`},
		"not an inner list":     {`a="@method"`, `a=:AAAA:`},
		"not bytes":             {`a=("@method")`, `a="AAAA"`},
		"upper-case component":  {`a=("Date")`, `a=:AAAA:`},
		"garbage":               {`a=(`, `a=:AAAA:`},
		"created not integer":   {`a=("@method");created="now"`, `a=:AAAA:`},
		"param on derived":      {`a=("@method";key="x")`, `a=:AAAA:`},
		"sf parameter":          {`a=("date";sf)`, `a=:AAAA:`},
		"too long":              {`a=("` + strings.Repeat("x", MaxHeaderBytes) + `")`, `a=:AAAA:`},
	} {
		hd := http.Header{}
		hd.Set("Signature-Input", h[0])
		hd.Set("Signature", h[1])
		if _, err := Parse(hd); err == nil {
			t.Errorf("%s: Parse accepted %v", name, h)
		}
	}
	if _, err := Parse(http.Header{}); !errors.Is(err, ErrMissing) {
		t.Errorf("no fields: %v", err)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	body := []byte(`{"amount":100}`)
	r := httptest.NewRequest("POST", "https://api.paybound.test/v1/payments", strings.NewReader(string(body)))
	r.Header.Set("Content-Digest", ContentDigest(body))
	r.Header.Set("Idempotency-Key", "k1")
	now := time.Now()
	p := Params{Components: []string{"@method", "@authority", "@path", "content-digest", "idempotency-key"},
		Created: now, Expires: now.Add(5 * time.Minute), Nonce: "n1", KeyID: "kid", Alg: "ed25519", Tag: "web-bot-auth"}
	if err := Sign(r, "https", "sig1", p, key); err != nil {
		t.Fatal(err)
	}
	sigs, err := Parse(r.Header)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, "https", &sigs[0], key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := CheckContentDigest(r.Header.Values("Content-Digest"), body); err != nil {
		t.Fatal(err)
	}
	if err := CheckContentDigest(r.Header.Values("Content-Digest"), []byte(`{"amount":101}`)); !errors.Is(err, ErrDigest) {
		t.Fatalf("changed body: %v", err)
	}
	// A signature for another key, or with a stated alg of another kind.
	_, other, _ := ed25519.GenerateKey(nil)
	if err := Verify(r, "https", &sigs[0], other.Public()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other key: %v", err)
	}
	// The window.
	s := sigs[0]
	if err := s.Check(now.Add(6*time.Minute), 5*time.Minute, 30*time.Second); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := s.Check(now.Add(-time.Minute), 5*time.Minute, 30*time.Second); !errors.Is(err, ErrExpired) {
		t.Fatalf("from the future: %v", err)
	}
	if err := s.Check(now.Add(time.Minute), 5*time.Minute, 30*time.Second); err != nil {
		t.Fatalf("inside the window: %v", err)
	}
}

func TestContentDigest(t *testing.T) {
	// RFC 9530 appendix: {"hello": "world"} with sha-256.
	body := []byte(`{"hello": "world"}`)
	if got := ContentDigest(body); got != "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:" {
		t.Fatalf("ContentDigest = %s", got)
	}
	for _, bad := range [][]string{nil, {"md5=:AAAA:"}, {"sha-256=AAAA"}, {"sha-256=:AAAA:"}, {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:AAAA:"}} {
		if err := CheckContentDigest(bad, body); !errors.Is(err, ErrDigest) {
			t.Errorf("CheckContentDigest(%q) = %v", bad, err)
		}
	}
	if err := CheckContentDigest([]string{"md5=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"}, body); err != nil {
		t.Errorf("unknown algorithm beside a good digest: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`sig1=("@authority");created=1735689600;keyid="k";alg="ed25519";expires=1735693200;nonce="n";tag="web-bot-auth"`, `sig1=:AAAA:`)
	f.Add(`sig2=("@authority" "signature-agent";key="agent2");created=1`, `sig2=:AAAA:`)
	f.Add(`a=("date" "@method")`, `a=:AAAA:, b=:BBBB:`)
	f.Fuzz(func(t *testing.T, input, sig string) {
		h := http.Header{}
		h.Set("Signature-Input", input)
		h.Set("Signature", sig)
		h.Set("Signature-Agent", `agent2="https://x.test"`)
		sigs, err := Parse(h)
		if err != nil {
			return
		}
		r := httptest.NewRequest("GET", "https://example.com/p", nil)
		r.Header = h
		for i := range sigs {
			// Must not panic; a random signature must not verify.
			pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
			if Verify(r, "https", &sigs[i], pub) == nil && len(sigs[i].Value) == ed25519.SignatureSize {
				t.Fatalf("a fuzzed signature verified: %q %q", input, sig)
			}
		}
	})
}

func FuzzCheckContentDigest(f *testing.F) {
	f.Add("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", []byte(`{"hello": "world"}`))
	f.Fuzz(func(t *testing.T, field string, body []byte) {
		if CheckContentDigest([]string{field}, body) == nil && !strings.Contains(field, ContentDigest(body)[len("sha-256="):]) && !strings.Contains(field, "sha-512") {
			t.Fatalf("%q accepted for a body it does not digest", field)
		}
	})
}

// BenchmarkParseVerify is the cost a signed request adds before the
// payment: parsing both fields, the digest check and the Ed25519 verify.
func BenchmarkParseVerify(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(nil)
	body := []byte(`{"amount":100,"currency":"USD","merchant_id":"mch_01m8f2r2gzqv2egs84n4zvbtb4"}`)
	r := httptest.NewRequest("POST", "https://api.paybound.test/v1/payments", strings.NewReader(string(body)))
	r.Header.Set("Content-Digest", ContentDigest(body))
	r.Header.Set("Idempotency-Key", "k1")
	now := time.Now()
	if err := Sign(r, "https", "sig1", Params{Components: []string{"@method", "@authority", "@path", "content-digest", "idempotency-key"},
		Created: now, Expires: now.Add(time.Minute), Nonce: "bm9uY2U=", KeyID: "kid", Alg: "ed25519", Tag: "web-bot-auth"}, key); err != nil {
		b.Fatal(err)
	}
	pub := key.Public()
	b.ReportAllocs()
	var lat []time.Duration // for the p99 the target is stated in
	for b.Loop() {
		t0 := time.Now()
		sigs, err := Parse(r.Header)
		if err != nil {
			b.Fatal(err)
		}
		if err := CheckContentDigest(r.Header.Values("Content-Digest"), body); err != nil {
			b.Fatal(err)
		}
		if err := Verify(r, "https", &sigs[0], pub); err != nil {
			b.Fatal(err)
		}
		if len(lat) < 1<<20 {
			lat = append(lat, time.Since(t0))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
