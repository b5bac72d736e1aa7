package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// NetworkPrefix is the CAIP-2 namespace of Paybound's networks: an
// instance's network is "paybound:<instance>".
const NetworkPrefix = "paybound:"

// AtomicDecimals is the scale of Paybound's x402 amounts: one atomic unit
// is 10^-6 of the currency's major unit, whatever its minor unit (0.01 USD
// is 10000 atomic units; 1 JPY is 1000000). A price below the minor unit
// (0.0001 USD = 100) can be said, and is settled through a tab.
const AtomicDecimals = 6

// MaxAtomic bounds an amount in atomic units (10^18 fits an int64 and is
// above the ledger's largest amount for every currency with exponent ≥ 0).
const MaxAtomic int64 = 1_000_000_000_000_000_000

// ValidNetwork reports whether n is a Paybound network: "paybound:" and a
// CAIP-2 reference of 1-32 letters, digits, '-' and '_'.
func ValidNetwork(n string) bool {
	ref, ok := strings.CutPrefix(n, NetworkPrefix)
	if !ok || ref == "" || len(ref) > 32 {
		return false
	}
	for _, c := range ref {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ParseAtomic reads an x402 amount: a decimal string of atomic units, no
// sign, no leading zeros, at most MaxAtomic.
func ParseAtomic(s string) (int64, error) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("x402: amount %q is not a decimal string of atomic units", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxAtomic {
		return 0, fmt.Errorf("x402: amount %q is above %d atomic units", s, MaxAtomic)
	}
	return n, nil
}

// unitsPerMinor is how many atomic units one minor unit of currency is.
func unitsPerMinor(currency string) (int64, error) {
	exp, ok := pb.CurrencyExponent(currency)
	if !ok || exp > AtomicDecimals {
		return 0, fmt.Errorf("x402: %q is not an ISO 4217 currency code", currency)
	}
	n := int64(1)
	for range AtomicDecimals - exp {
		n *= 10
	}
	return n, nil
}

// MinorUnits converts atomic units of currency to the ledger's minor
// units, rounding up: a charge of 1 atomic unit of USD is 1 cent. rem is
// what the rounding added, in atomic units (0 when atomic is a whole number
// of minor units).
func MinorUnits(atomic int64, currency string) (minor, rem int64, err error) {
	per, err := unitsPerMinor(currency)
	if err != nil {
		return 0, 0, err
	}
	if atomic < 0 {
		return 0, 0, errors.New("x402: negative amount")
	}
	minor = atomic / per
	if r := atomic % per; r != 0 {
		minor++
		rem = per - r
	}
	return minor, rem, nil
}

// AtomicUnits converts minor units of currency to atomic units.
func AtomicUnits(minor int64, currency string) (int64, error) {
	per, err := unitsPerMinor(currency)
	if err != nil {
		return 0, err
	}
	if minor < 0 || minor > MaxAtomic/per {
		return 0, fmt.Errorf("x402: %d minor units is out of range", minor)
	}
	return minor * per, nil
}

// Authorization is what a paying agent signs in Paybound's exact and upto
// schemes: pay To (a merchant) at most Value atomic units of Asset for
// Resource, under Mandate, between ValidAfter and ValidBefore (Unix
// seconds, ValidBefore exclusive), once (Nonce). From is the RFC 7638
// thumbprint of the agent's Ed25519 key (the keyid of its signed
// requests), which names the agent.
type Authorization struct {
	From        string `json:"from"`
	Mandate     string `json:"mandate"`
	To          string `json:"to"`
	Value       string `json:"value"`
	Asset       string `json:"asset"`
	Resource    string `json:"resource"`
	ValidAfter  string `json:"validAfter"`
	ValidBefore string `json:"validBefore"`
	Nonce       string `json:"nonce"`
}

// SignedAuthorization is the payload of Paybound's exact and upto schemes:
// the authorization and its Ed25519 signature (unpadded base64url) over
// SigningInput.
type SignedAuthorization struct {
	Authorization Authorization `json:"authorization"`
	Signature     string        `json:"signature"`
}

// Limits of an authorization's fields.
const (
	maxFieldBytes    = 200
	maxResourceBytes = 2048
	// MaxValidity bounds ValidBefore-ValidAfter: a facilitator remembers a
	// spent authorization at least this long, so it can refuse its replay.
	MaxValidity = time.Hour
)

// check validates a's fields (not the signature): each present, printable
// ASCII (so the signing input is unambiguous), within its limit; Value an
// amount; the window well-formed and at most MaxValidity.
func (a *Authorization) check() error {
	fields := []struct{ name, v string }{{"from", a.From}, {"mandate", a.Mandate}, {"to", a.To},
		{"value", a.Value}, {"asset", a.Asset}, {"resource", a.Resource}, {"validAfter", a.ValidAfter},
		{"validBefore", a.ValidBefore}, {"nonce", a.Nonce}}
	for _, f := range fields {
		limit := maxFieldBytes
		if f.name == "resource" {
			limit = maxResourceBytes
		}
		if f.v == "" || len(f.v) > limit {
			return fmt.Errorf("x402: authorization.%s must be 1-%d bytes", f.name, limit)
		}
		for i := 0; i < len(f.v); i++ {
			if f.v[i] < 0x21 || f.v[i] > 0x7e {
				return fmt.Errorf("x402: authorization.%s must be printable ASCII without spaces", f.name)
			}
		}
	}
	if _, err := ParseAtomic(a.Value); err != nil {
		return err
	}
	after, before, err := a.Window()
	if err != nil {
		return err
	}
	if !before.After(after) || before.Sub(after) > MaxValidity {
		return fmt.Errorf("x402: the authorization's window must be positive and at most %s", MaxValidity)
	}
	return nil
}

// Window returns the authorization's validity window.
func (a *Authorization) Window() (after, before time.Time, err error) {
	va, err1 := strconv.ParseInt(a.ValidAfter, 10, 64)
	vb, err2 := strconv.ParseInt(a.ValidBefore, 10, 64)
	if err1 != nil || err2 != nil || va < 0 || vb < 0 {
		return time.Time{}, time.Time{}, errors.New("x402: validAfter and validBefore must be Unix seconds")
	}
	return time.Unix(va, 0), time.Unix(vb, 0), nil
}

// SigningInput is the bytes an agent signs: a fixed label, the scheme and
// the network (so an authorization for one cannot be replayed as another),
// then each field of a as "name=value", one per line.
func (a *Authorization) SigningInput(scheme, network string) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	if scheme != SchemeExact && scheme != SchemeUpto && scheme != SchemeBatch {
		return nil, fmt.Errorf("x402: scheme %q has no Paybound authorization", scheme)
	}
	if !ValidNetwork(network) {
		return nil, fmt.Errorf("x402: %q is not a Paybound network", network)
	}
	var b strings.Builder
	b.WriteString("x402-paybound-authorization/1\n")
	for _, kv := range [][2]string{{"scheme", scheme}, {"network", network}, {"from", a.From},
		{"mandate", a.Mandate}, {"to", a.To}, {"value", a.Value}, {"asset", a.Asset},
		{"resource", a.Resource}, {"validAfter", a.ValidAfter}, {"validBefore", a.ValidBefore}, {"nonce", a.Nonce}} {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	return []byte(b.String()), nil
}

// Sign signs a for scheme and network with priv, whose public key's
// thumbprint must be a.From.
func Sign(priv ed25519.PrivateKey, scheme, network string, a Authorization) (*SignedAuthorization, error) {
	if Thumbprint(priv.Public().(ed25519.PublicKey)) != a.From {
		return nil, errors.New("x402: authorization.from must be the thumbprint of the signing key")
	}
	in, err := a.SigningInput(scheme, network)
	if err != nil {
		return nil, err
	}
	return &SignedAuthorization{Authorization: a, Signature: base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, in))}, nil
}

// DelegatedPrefix starts the From of a delegated authorization: one that
// a Paybound server signs with its own delegation key for an agent it has
// authenticated (its MCP server's pay_x402_resource, for an agent that
// calls it with an API key and holds no key the server could sign with).
// The rest of From is the agent's ID. Only that server's facilitator
// accepts it: no agent key has a thumbprint with a colon, so a delegated
// authorization can never be taken for an agent's own.
const DelegatedPrefix = "delegated:"

// DelegatedAgent returns the agent a delegated From names.
func DelegatedAgent(from string) (string, bool) {
	id, ok := strings.CutPrefix(from, DelegatedPrefix)
	return id, ok && id != ""
}

// SignDelegated signs a, whose From is DelegatedPrefix and an agent's ID,
// with priv, the server's delegation key.
func SignDelegated(priv ed25519.PrivateKey, scheme, network string, a Authorization) (*SignedAuthorization, error) {
	if _, ok := DelegatedAgent(a.From); !ok || len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("x402: a delegated authorization's from is " + DelegatedPrefix + "<agent ID>, signed with an Ed25519 key")
	}
	in, err := a.SigningInput(scheme, network)
	if err != nil {
		return nil, err
	}
	return &SignedAuthorization{Authorization: a, Signature: base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, in))}, nil
}

// ErrBadSignature is returned by Verify for a signature that does not
// verify.
var ErrBadSignature = errors.New("x402: the authorization's signature does not verify")

// Verify checks s's signature for scheme and network with pub (the key
// whose thumbprint is s.Authorization.From). It returns ErrBadSignature,
// or the error of a malformed authorization.
func (s *SignedAuthorization) Verify(pub ed25519.PublicKey, scheme, network string) error {
	in, err := s.Authorization.SigningInput(scheme, network)
	if err != nil {
		return err
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s.Signature, "="))
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, in, sig) {
		return ErrBadSignature
	}
	return nil
}

// Digest is the SHA-256 of s's signing input and signature, hex: what
// identifies one signed authorization (its idempotency hash).
func (s *SignedAuthorization) Digest(scheme, network string) string {
	in, _ := s.Authorization.SigningInput(scheme, network)
	h := sha256.New()
	h.Write(in)
	h.Write([]byte(s.Signature))
	return hex.EncodeToString(h.Sum(nil))
}

// ParseSignedAuthorization reads a PaymentPayload's payload as Paybound's
// signed authorization.
func ParseSignedAuthorization(raw json.RawMessage) (*SignedAuthorization, error) {
	var s SignedAuthorization
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("x402: the payload is not a Paybound authorization: %w", err)
	}
	if err := s.Authorization.check(); err != nil {
		return nil, err
	}
	if s.Signature == "" {
		return nil, errors.New("x402: the payload has no signature")
	}
	return &s, nil
}

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key, the keyid
// Paybound names an agent's key by.
func Thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewNonce returns a fresh nonce: 32 bytes, hex, of which the first 6 are
// the milliseconds since the epoch and the other 26 random. Any 32 bytes
// will do for a facilitator; beginning with the time puts a payer's new
// nonces together at the end of Paybound's index of them (payer, nonce),
// where random ones cost a page of the index each.
func NewNonce() string {
	var b [32]byte
	rand.Read(b[6:])
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i], ms = byte(ms), ms>>8
	}
	return hex.EncodeToString(b[:])
}
