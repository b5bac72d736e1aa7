package confirm

import (
	"reflect"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestLoggedDataIsCanonical: the data step-up logs is canonical JSON by
// construction (pb.EncodeLogEntry's contract).
func TestLoggedDataIsCanonical(t *testing.T) {
	if err := pb.CanonicalByConstruction(reflect.TypeOf(approvedData{})); err != nil {
		t.Error(err)
	}
}

// TestGuessLimiter: a user is limited once MaxCodeFailuresPerUser wrong
// codes fall within CodeFailureWindow, until the oldest leaves it; another
// user is not.
func TestGuessLimiter(t *testing.T) {
	var g guessLimiter
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for i := range MaxCodeFailuresPerUser {
		if d := g.wait("usr_a", now); d != 0 {
			t.Fatalf("after %d failures: wait %v", i, d)
		}
		g.fail("usr_a", now.Add(time.Duration(i)*time.Second))
	}
	if d := g.wait("usr_a", now.Add(time.Minute)); d != CodeFailureWindow-time.Minute {
		t.Fatalf("after %d failures: wait %v, want %v", MaxCodeFailuresPerUser, d, CodeFailureWindow-time.Minute)
	}
	if d := g.wait("usr_b", now); d != 0 {
		t.Fatalf("another user: wait %v", d)
	}
	if d := g.wait("usr_a", now.Add(CodeFailureWindow)); d != 0 {
		t.Fatalf("once the oldest failure left the window: wait %v", d)
	}
}
