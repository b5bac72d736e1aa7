package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// node runs interop/SCRIPT with the real npm packages (interop/package.json;
// ./test.sh installs them). Without them the test is skipped, except in CI.
func node(t *testing.T, script string, spec any) []byte {
	t.Helper()
	dir := filepath.Join("..", "..", "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "web-bot-auth")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("interop/node_modules is missing; ./test.sh runs npm ci in interop/")
		}
		t.Skip("interop/node_modules is missing; run ./test.sh (it runs npm ci in interop/)")
	}
	in, _ := json.Marshal(spec)
	cmd := exec.Command("node", script)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	return out
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"`
}

func newKey(t *testing.T) (ed25519.PrivateKey, jwk) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return priv, jwk{Kty: "OKP", Crv: "Ed25519", X: enc(pub), D: enc(priv.Seed())}
}

var interopComponents = []string{"@method", "@authority", "@path", "content-digest", "idempotency-key"}

// TestInteropTheirSignaturesVerify: requests signed by the npm packages
// web-bot-auth and http-message-signatures verify here, and fail once the
// body changes.
func TestInteropTheirSignaturesVerify(t *testing.T) {
	priv, key := newKey(t)
	body := `{"amount":100,"currency":"USD"}`
	nonce := make([]byte, 64)
	rand.Read(nonce)
	now := time.Now().Unix()
	for _, lib := range []string{"web-bot-auth", "http-message-signatures"} {
		t.Run(lib, func(t *testing.T) {
			headers := map[string]string{"content-digest": ContentDigest([]byte(body)), "idempotency-key": "interop-1"}
			out := node(t, "sign.mjs", map[string]any{"lib": lib, "method": "POST", "url": "https://api.paybound.test/v1/payments",
				"headers": headers, "jwk": key, "keyid": "kid-1", "components": interopComponents,
				"created": now, "expires": now + 300, "nonce": base64.StdEncoding.EncodeToString(nonce)})
			var got map[string]string
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s printed %s", lib, out)
			}
			r := httptest.NewRequest("POST", "https://api.paybound.test/v1/payments", strings.NewReader(body))
			for k, v := range headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("Signature-Input", got["Signature-Input"])
			r.Header.Set("Signature", got["Signature"])
			sigs, err := Parse(r.Header)
			if err != nil || len(sigs) != 1 {
				t.Fatalf("Parse(%v): %v", got, err)
			}
			s := sigs[0]
			if s.KeyID != "kid-1" || s.Created.Unix() != now || s.Tag != "web-bot-auth" {
				t.Fatalf("parameters: %+v", s.Params)
			}
			if err := Verify(r, "https", &s, priv.Public()); err != nil {
				t.Fatalf("%s's signature does not verify: %v", lib, err)
			}
			if err := CheckContentDigest(r.Header.Values("Content-Digest"), []byte(body)); err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Idempotency-Key", "interop-2")
			if err := Verify(r, "https", &s, priv.Public()); err == nil {
				t.Fatal("a changed covered field still verifies")
			}
		})
	}
}

// TestInteropOurSignaturesVerify: requests signed here verify with both npm
// packages.
func TestInteropOurSignaturesVerify(t *testing.T) {
	priv, key := newKey(t)
	pubKey := key
	pubKey.D = ""
	body := []byte(`{"amount":100}`)
	nonce := make([]byte, 64)
	rand.Read(nonce)
	now := time.Now()
	r := httptest.NewRequest("POST", "https://api.paybound.test/v1/payments", bytes.NewReader(body))
	r.Header.Set("Content-Digest", ContentDigest(body))
	r.Header.Set("Idempotency-Key", "ours-1")
	if err := Sign(r, "https", "sig1", Params{Components: interopComponents, Created: now, Expires: now.Add(5 * time.Minute),
		Nonce: base64.StdEncoding.EncodeToString(nonce), KeyID: "kid-1", Alg: "ed25519", Tag: "web-bot-auth"}, priv); err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{}
	for k := range r.Header {
		headers[strings.ToLower(k)] = r.Header.Get(k)
	}
	for _, lib := range []string{"web-bot-auth", "http-message-signatures"} {
		out := node(t, "verify.mjs", map[string]any{"lib": lib, "method": "POST", "url": "https://api.paybound.test/v1/payments",
			"headers": headers, "jwk": pubKey})
		var res struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(out, &res); err != nil || !res.OK {
			t.Fatalf("%s rejects our signature: %s", lib, out)
		}
	}
}
