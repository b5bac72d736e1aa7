package sqlstore

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

// A replay returns exactly the bytes first answered: every body, whatever
// it starts with and however well it compresses, reads back unchanged.
func TestIdempotencyBodyRoundTrip(t *testing.T) {
	random := make([]byte, 4096)
	rand.Read(random)
	session := []byte(`{"id":"cs_1","capabilities":{"payment":{"handlers":[` + strings.Repeat(`{"id":"paybound_agent_card","psp":"paybound"},`, 20) + `{}]}}}`)
	for name, body := range map[string][]byte{
		"empty":             {},
		"short JSON":        []byte(`{"id":"vt_1"}`),
		"session":           session,
		"incompressible":    random,
		"marked, short":     {0, 'z', 1},
		"marked, long":      append([]byte{0, 'z'}, random...),
		"marked, session":   append([]byte{0, 'z'}, session...),
		"mark alone":        {0, 'z'},
		"NUL, not the mark": append([]byte{0, 'y'}, session...),
	} {
		stored := Deflate(body)
		got, err := Inflate(stored)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, body) {
			t.Errorf("%s: read back %d bytes %q..., stored %d bytes", name, len(got), got[:min(len(got), 16)], len(body))
		}
	}
	if n := len(Deflate(session)); n >= len(session)/2 {
		t.Errorf("a session's %d bytes are stored in %d", len(session), n)
	}
	if got := Deflate(random); !bytes.Equal(got, random) {
		t.Errorf("an incompressible body is stored deflated (%d bytes for %d)", len(got), len(random))
	}
}

// A damaged compressed body is an error, not a wrong replay.
func TestIdempotencyBodyDamaged(t *testing.T) {
	stored := Deflate([]byte(strings.Repeat(`{"status":"ready_for_payment"}`, 20)))
	if _, err := Inflate(stored[:len(stored)/2]); err == nil {
		t.Error("a truncated body inflated")
	}
	// A bomb: far more zeros than a response could be.
	bomb := Deflate(make([]byte, maxInflated+1))
	if _, err := Inflate(bomb); err == nil {
		t.Error("a body past the limit inflated")
	}
}
