package paybound

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"testing"
)

// TestAgentKeyEd25519: a key stored as ParseEd25519JWK made it decodes to
// the same public key; a stored key that is not one is an error.
func TestAgentKeyEd25519(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	canonical, keyid, err := ParseEd25519JWK([]byte(`{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	k := AgentKey{KeyID: keyid, PublicKey: canonical}
	if got, err := k.Ed25519(); err != nil || !bytes.Equal(got, pub) {
		t.Fatalf("Ed25519() = %x, %v; want %x", got, err, pub)
	}
	for _, bad := range []string{"", "{", `{"x":"AAAA"}`, `{"x":"!!"}`} {
		if got, err := (&AgentKey{KeyID: "k", PublicKey: bad}).Ed25519(); err == nil {
			t.Errorf("Ed25519() of %q = %x, want an error", bad, got)
		}
	}
}
