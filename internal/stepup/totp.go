// Package stepup holds the user-verification factors that approve a payment
// outside a mandate. This file is TOTP (RFC 6238): HMAC-SHA-1, 6 digits, 30
// second steps, for users without a passkey.
package stepup

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters (RFC 6238 defaults, as authenticator apps expect them).
const (
	TOTPDigits     = 6
	TOTPStep       = 30 * time.Second
	TOTPSecretSize = 20 // bytes: 160 bits, RFC 4226's recommendation
	// TOTPSkew is how many steps before and after now a code is accepted,
	// for clock drift between the phone and the server.
	TOTPSkew = 1
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a fresh random secret and its base32 form (what
// authenticator apps take).
func NewTOTPSecret() (secret []byte, encoded string) {
	secret = make([]byte, TOTPSecretSize)
	_, _ = rand.Read(secret) // crypto/rand.Read never fails (Go 1.24+).
	return secret, b32.EncodeToString(secret)
}

// DecodeTOTPSecret parses a base32 secret (upper or lower case, with or
// without padding and spaces).
func DecodeTOTPSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.ReplaceAll(strings.TrimRight(s, "="), " ", ""))
	b, err := b32.DecodeString(s)
	if err != nil || len(b) < 10 {
		return nil, fmt.Errorf("stepup: a TOTP secret is at least 80 bits of base32")
	}
	return b, nil
}

// TOTPCode returns the code of secret for the step that contains t.
func TOTPCode(secret []byte, t time.Time) string {
	return hotp(secret, uint64(t.Unix())/uint64(TOTPStep/time.Second), TOTPDigits)
}

// hotp is RFC 4226's HOTP with dynamic truncation.
func hotp(secret []byte, counter uint64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, v%mod)
}

// VerifyTOTP checks code against secret at now, within TOTPSkew steps, and
// returns the step it matched. A step at or before lastStep is refused: the
// caller stores the returned step, so that a code is accepted once.
func VerifyTOTP(secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	if len(code) != TOTPDigits {
		return 0, false
	}
	cur := now.Unix() / int64(TOTPStep/time.Second)
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		s := cur + d
		if s <= lastStep || s < 0 {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(hotp(secret, uint64(s), TOTPDigits)), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// TOTPURL is the otpauth:// URL (Key Uri Format) for enrolling secret in an
// authenticator app, shown as a QR code.
func TOTPURL(issuer, account string, secret []byte) string {
	v := url.Values{}
	v.Set("secret", b32.EncodeToString(secret))
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(TOTPDigits))
	v.Set("period", fmt.Sprint(int(TOTPStep/time.Second)))
	return "otpauth://totp/" + url.PathEscape(issuer+":"+account) + "?" + v.Encode()
}
