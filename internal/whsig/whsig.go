// Package whsig signs and verifies webhook deliveries: Standard Webhooks
// 1.0 (webhook-id, webhook-timestamp and webhook-signature, with v1
// HMAC-SHA256 and v1a Ed25519 signatures of "id.timestamp.body") and
// ACP's Merchant-Signature (t=<unix>,v1=<hex HMAC-SHA256 of "t.body">).
// It is pure: the sender (internal/webhooks) and the receiver's helper in
// the Go SDK (client.VerifyWebhook) share it.
package whsig

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prefixes of Standard Webhooks keys: a symmetric secret, an Ed25519
// public key.
const (
	SecretPrefix    = "whsec_"
	PublicKeyPrefix = "whpk_"
)

// SecretBytes is the length of a new secret's key (Standard Webhooks asks
// for 24 to 64 bytes).
const SecretBytes = 32

// Tolerance is how far a delivery's timestamp may be from the receiver's
// clock, as Standard Webhooks recommends.
const Tolerance = 5 * time.Minute

// NewSecret returns a new secret: whsec_ and the base64 of SecretBytes
// random bytes.
func NewSecret() string {
	b := make([]byte, SecretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// SecretKey returns the HMAC key of secret: its base64 after whsec_.
func SecretKey(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(k) == 0 {
		return nil, errors.New("whsig: a secret is whsec_ followed by base64")
	}
	return k, nil
}

// signedContent is what both signatures cover: "id.timestamp.body".
func signedContent(id string, ts int64, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(body)+22)
	b = append(append(b, id...), '.')
	b = append(strconv.AppendInt(b, ts, 10), '.')
	return append(b, body...)
}

// V1 returns the v1 signature of a delivery: "v1," and the base64 of its
// HMAC-SHA256 under key.
func V1(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(signedContent(id, ts, body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// V1a returns the v1a signature of a delivery: "v1a," and the base64 of
// its Ed25519 signature under priv.
func V1a(priv ed25519.PrivateKey, id string, ts int64, body []byte) string {
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, signedContent(id, ts, body)))
}

// PublicKey is pub as Standard Webhooks writes it: whpk_ and its base64.
func PublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a whpk_ key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, PublicKeyPrefix))
	if err != nil || len(b) != ed25519.PublicKeySize || !strings.HasPrefix(s, PublicKeyPrefix) {
		return nil, errors.New("whsig: a public key is whpk_ followed by the base64 of 32 bytes")
	}
	return ed25519.PublicKey(b), nil
}

// Errors of Verify.
var (
	ErrMissingHeaders = errors.New("whsig: webhook-id, webhook-timestamp and webhook-signature are required")
	ErrTimestamp      = errors.New("whsig: webhook-timestamp is not a time within the tolerance")
	ErrNoSignature    = errors.New("whsig: no signature matches")
)

// MaxHeader bounds each header Verify reads: a signature header lists a
// few signatures, not thousands.
const MaxHeader = 4096

// Verify checks a delivery's headers against body: the timestamp within
// Tolerance of now, and one v1 signature by one of keys or, when pub is
// set, one v1a signature by pub. It returns ErrMissingHeaders,
// ErrTimestamp or ErrNoSignature.
func Verify(id, timestamp, signatures string, body []byte, now time.Time, pub ed25519.PublicKey, keys ...[]byte) error {
	if id == "" || timestamp == "" || signatures == "" || len(id) > MaxHeader || len(signatures) > MaxHeader {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > Tolerance || d < -Tolerance {
		return ErrTimestamp
	}
	content := signedContent(id, ts, body)
	for _, s := range strings.Fields(signatures) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		switch version {
		case "v1":
			for _, k := range keys {
				m := hmac.New(sha256.New, k)
				m.Write(content)
				if hmac.Equal(m.Sum(nil), raw) {
					return nil
				}
			}
		case "v1a":
			if pub != nil && len(raw) == ed25519.SignatureSize && ed25519.Verify(pub, content, raw) {
				return nil
			}
		}
	}
	return ErrNoSignature
}

// ACP returns ACP's Merchant-Signature header of body sent at ts: the
// HMAC-SHA256, under secret's bytes as the receiver was given them, of
// "<ts>.<body>".
func ACP(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + strconv.FormatInt(ts, 10) + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifyACP checks a Merchant-Signature header against body, its
// timestamp within Tolerance of now.
func VerifyACP(header, secret string, body []byte, now time.Time) error {
	t, v1, ok := strings.Cut(header, ",")
	tsS, okT := strings.CutPrefix(t, "t=")
	sig, okV := strings.CutPrefix(v1, "v1=")
	if !ok || !okT || !okV || len(sig) != 64 {
		return fmt.Errorf("whsig: Merchant-Signature must be t=<timestamp>,v1=<64 hex>")
	}
	ts, err := strconv.ParseInt(tsS, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > Tolerance || d < -Tolerance {
		return ErrTimestamp
	}
	if !hmac.Equal([]byte(ACP(secret, ts, body)), []byte("t="+tsS+",v1="+strings.ToLower(sig))) {
		return ErrNoSignature
	}
	return nil
}
