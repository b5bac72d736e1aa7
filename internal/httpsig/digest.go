package httpsig

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/dunglas/httpsfv"
)

// ErrDigest is returned when Content-Digest is missing, malformed, names no
// algorithm this package knows, or does not match the body.
var ErrDigest = errors.New("httpsig: Content-Digest does not match the body")

// ContentDigest returns the Content-Digest field value of body (RFC 9530),
// with SHA-256.
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// CheckContentDigest checks the Content-Digest field values against body.
// Algorithms other than sha-256 and sha-512 are ignored; at least one known
// digest must be present, and every known one must match.
func CheckContentDigest(values []string, body []byte) error {
	if len(values) == 0 {
		return fmt.Errorf("%w: the field is missing", ErrDigest)
	}
	if size(values) > MaxHeaderBytes {
		return fmt.Errorf("%w: the field is too long", ErrDigest)
	}
	d, err := httpsfv.UnmarshalDictionary(values)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDigest, err)
	}
	known := 0
	for _, alg := range d.Names() {
		var want []byte
		switch alg {
		case "sha-256":
			s := sha256.Sum256(body)
			want = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			want = s[:]
		default:
			continue
		}
		m, _ := d.Get(alg)
		item, ok := m.(httpsfv.Item)
		got, isBytes := item.Value.([]byte)
		if !ok || !isBytes {
			return fmt.Errorf("%w: %s is not a byte sequence", ErrDigest, alg)
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return ErrDigest
		}
		known++
	}
	if known == 0 {
		return fmt.Errorf("%w: no sha-256 or sha-512 digest", ErrDigest)
	}
	return nil
}
