package paybound

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// MaxJWKLength bounds a public key document.
const MaxJWKLength = 2048

// ParseEd25519JWK validates an Ed25519 public key in JWK form (RFC 8037:
// kty "OKP", crv "Ed25519", x the 32-byte key in unpadded base64url) and
// returns it in canonical form with its RFC 7638 thumbprint, which is the
// keyid agents sign with.
func ParseEd25519JWK(raw []byte) (canonical, thumbprint string, err error) {
	bad := func(why string) error {
		return Errorf(ErrParameterInvalid, "public_key", "public_key must be an Ed25519 JWK {\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"…\"}: %s", why)
	}
	if len(raw) > MaxJWKLength {
		return "", "", bad("it is too long")
	}
	var k struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		D   string `json:"d"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&k); err != nil {
		return "", "", bad("it is not a JSON object")
	}
	if k.D != "" {
		return "", "", bad("it contains the private key (d); send only the public part")
	}
	if k.Kty != "OKP" || k.Crv != "Ed25519" {
		return "", "", bad("kty must be OKP and crv Ed25519")
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != 32 {
		return "", "", bad("x must be 32 bytes in unpadded base64url")
	}
	// RFC 7638: the required members in lexicographic order, no whitespace.
	canonical = `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(x) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return canonical, base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// Ed25519 decodes k's public key from its canonical JWK (as
// ParseEd25519JWK stored it).
func (k *AgentKey) Ed25519() (ed25519.PublicKey, error) {
	var jwk struct {
		X string `json:"x"`
	}
	if err := json.Unmarshal([]byte(k.PublicKey), &jwk); err != nil {
		return nil, fmt.Errorf("key %s: %w", k.KeyID, err)
	}
	x, err := base64.RawURLEncoding.DecodeString(jwk.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %s is not an Ed25519 key", k.KeyID)
	}
	return ed25519.PublicKey(x), nil
}
