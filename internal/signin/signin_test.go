package signin

import (
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// TestNewCode: a code is CodeDigits decimal digits, each digit about as
// likely as any other (no modulo bias to speak of).
func TestNewCode(t *testing.T) {
	var counts [10]int
	const n = 20_000
	for range n {
		c := newCode()
		if len(c) != CodeDigits || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("code %q", c)
		}
		for _, d := range c {
			counts[d-'0']++
		}
	}
	want := n * CodeDigits / 10
	for d, got := range counts {
		if got < want*95/100 || got > want*105/100 {
			t.Errorf("digit %d: %d of %d, want about %d", d, got, n*CodeDigits, want)
		}
	}
}

// TestNormalize: spaces and dashes a person types are dropped, nothing
// else.
func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"1234 5678": "12345678", "1234-5678": "12345678", " 12 34 ": "1234", "12a4": "12a4"} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPasskeyChallenge: a challenge checks until its expiry on the
// service's clock, and not a moment after; one altered anywhere, one of
// another key, and one of another length do not check.
func TestPasskeyChallenge(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	s, err := New(nil, Config{Key: []byte("0123456789abcdef0123456789abcdef"), Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(nil, Config{Key: []byte("fedcba9876543210fedcba9876543210"), Clock: c})
	ch := s.NewPasskeyChallenge()
	if err := s.CheckPasskeyChallenge(ch); err != nil {
		t.Fatalf("a fresh challenge: %v", err)
	}
	if s.CheckPasskeyChallenge(s.NewPasskeyChallenge()) != nil || string(s.NewPasskeyChallenge()) == string(ch) {
		t.Fatal("two challenges are alike")
	}
	for i := range ch {
		bad := append([]byte(nil), ch...)
		bad[i] ^= 0x80
		if s.CheckPasskeyChallenge(bad) == nil {
			t.Fatalf("a challenge altered at byte %d checks", i)
		}
	}
	if other.CheckPasskeyChallenge(ch) == nil || s.CheckPasskeyChallenge(ch[:len(ch)-1]) == nil || s.CheckPasskeyChallenge(append(ch, 0)) == nil {
		t.Fatal("another key's, or a shorter or longer challenge checks")
	}
	c.now = c.now.Add(ChallengeTTL - time.Second)
	if err := s.CheckPasskeyChallenge(ch); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	c.now = c.now.Add(time.Second)
	if s.CheckPasskeyChallenge(ch) == nil {
		t.Fatal("an expired challenge checks")
	}
}
