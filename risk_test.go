package paybound

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestIDFloor: every ID made at an instant's millisecond or later sorts at
// or after IDFloor of it, and every ID made before sorts before.
func TestIDFloor(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		at := time.UnixMilli(rng.Int64N(1 << 47)).Add(time.Duration(rng.Int64N(int64(time.Millisecond))))
		floor := IDFloor(PrefixPayment, at)
		if !HasPrefix(floor, PrefixPayment) {
			t.Fatalf("IDFloor(%v) = %q, not a payment ID", at, floor)
		}
		if id := NewID(PrefixPayment, at.Truncate(time.Millisecond)); id < floor {
			t.Fatalf("NewID at %v = %s sorts before IDFloor = %s", at, id, floor)
		}
		if id := NewID(PrefixPayment, at.Add(-time.Millisecond)); id >= floor {
			t.Fatalf("NewID a millisecond before %v = %s sorts at or after IDFloor = %s", at, id, floor)
		}
	}
}
