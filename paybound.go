// Package paybound holds the domain of Paybound: money, identities, payments,
// the double-entry ledger's records, coded errors, and the Store contract
// that every storage adapter implements. It does no I/O; adapters live under
// internal/ and import this package, never the reverse.
package paybound

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"
)

// Clock is the source of time for everything that decides with it (hold
// expiry, idempotency retention, IDs), injected so tests can move it.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ID prefixes of the public API (DESIGN.md §4).
const (
	PrefixUser         = "usr_"
	PrefixMerchant     = "mch_"
	PrefixAgent        = "agt_"
	PrefixMandate      = "mdt_"
	PrefixPayment      = "pay_"
	PrefixRefund       = "re_"
	PrefixTopup        = "top_"
	PrefixDispute      = "dsp_"
	PrefixCompensation = "cmp_"
)

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// NewID returns prefix followed by 26 base32 characters: 48 bits of
// milliseconds since the epoch, then 80 random bits. IDs of one prefix sort
// by creation time (to the millisecond), which is what cursor pagination
// orders by.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+).
	var sb strings.Builder
	sb.Grow(len(prefix) + 26)
	sb.WriteString(prefix)
	// 128 bits as 26 base32 digits, most significant first.
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	for i := 25; i >= 0; i-- {
		shift := uint(i * 5)
		var v uint64
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift+5 > 64:
			v = lo>>shift | hi<<(64-shift)
		default:
			v = lo >> shift
		}
		sb.WriteByte(crockford[v&31])
	}
	return sb.String()
}

// HasPrefix reports whether id has prefix and a plausible body, so that
// lookups can reject garbage before touching storage.
func HasPrefix(id, prefix string) bool {
	if len(id) != len(prefix)+26 || !strings.HasPrefix(id, prefix) {
		return false
	}
	for i := len(prefix); i < len(id); i++ {
		if strings.IndexByte(crockford, id[i]) < 0 {
			return false
		}
	}
	return true
}

// OptString is a string that is JSON null when empty, for optional
// references such as agent_id.
type OptString string

// MarshalJSON writes null for "".
func (s OptString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

// UnmarshalJSON reads a string or null.
func (s *OptString) UnmarshalJSON(b []byte) error {
	var v *string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = ""
	if v != nil {
		*s = OptString(*v)
	}
	return nil
}
