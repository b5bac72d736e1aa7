package sqlite_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlite"
)

// TestNoncesMovedInBatches: a signed request's nonce is seen from its
// commit on, and a batch that stores it again is refused, while it waits
// in signature_nonces_new, just after the move that took it, long after,
// and after a reopen; an x402 nonce goes straight to signature_nonces;
// DeleteNonces deletes expired nonces from both tables and forgets them.
func TestNoncesMovedInBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	s := open(t, path)
	sqlite.SetMoveNoncesAt(s, 3)
	raw := openRaw(t, path)
	ctx := t.Context()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	nonce := func(i int) pb.Nonce {
		return pb.Nonce{KeyID: "kid", Nonce: fmt.Sprintf("n%d", i), Expires: t0.Add(time.Duration(i) * time.Minute)}
	}
	counts := func() (moved, waiting int) {
		t.Helper()
		if err := raw.QueryRow(`SELECT (SELECT COUNT(*) FROM signature_nonces), (SELECT COUNT(*) FROM signature_nonces_new)`).Scan(&moved, &waiting); err != nil {
			t.Fatal(err)
		}
		return moved, waiting
	}
	refused := func(what string, n pb.Nonce) {
		t.Helper()
		if seen, err := s.NonceSeen(ctx, n); err != nil || !seen {
			t.Fatalf("%s: NonceSeen(%+v) = %v, %v", what, n, seen, err)
		}
		b := &pb.Batch{AgentKeyPart: pb.AgentKeyPart{Nonces: []pb.Nonce{n}}, PaymentPart: pb.PaymentPart{Users: []pb.User{{ID: "usr_replay", Name: "x", CreatedAt: t0}}}}
		if err := s.Commit(ctx, b); err == nil {
			t.Fatalf("%s: nonce %+v was stored twice", what, n)
		}
		if _, err := s.User(ctx, "usr_replay"); pb.ErrorCode(err) != pb.ErrNotFound {
			t.Fatalf("%s: the refused batch's user was written", what)
		}
	}
	commitNonces := func(ns ...pb.Nonce) {
		t.Helper()
		if err := s.Commit(ctx, &pb.Batch{AgentKeyPart: pb.AgentKeyPart{Nonces: ns}}); err != nil {
			t.Fatal(err)
		}
	}

	commitNonces(nonce(1), nonce(2))
	if moved, waiting := counts(); moved != 0 || waiting != 2 {
		t.Fatalf("after 2 nonces: %d moved, %d waiting; want 0 and 2", moved, waiting)
	}
	refused("waiting", nonce(1))
	if seen, _ := s.NonceSeen(ctx, pb.Nonce{KeyID: "kid", Nonce: "n1", Expires: nonce(1).Expires.Add(time.Second)}); seen {
		t.Fatal("a nonce with another expiry was seen")
	}
	commitNonces(nonce(3)) // the third: all three move
	if moved, waiting := counts(); moved != 3 || waiting != 0 {
		t.Fatalf("after 3 nonces: %d moved, %d waiting; want 3 and 0", moved, waiting)
	}
	refused("just moved", nonce(3))
	commitNonces(nonce(4), nonce(5), nonce(6)) // another move: 1-3 are only on disk now
	refused("moved long ago", nonce(2))
	x := pb.Nonce{KeyID: "kid", Nonce: pb.NoncePrefixX402 + "x1", Expires: t0.Add(time.Minute)}
	commitNonces(nonce(7), x)
	if moved, waiting := counts(); moved != 7 || waiting != 1 {
		t.Fatalf("after an x402 nonce: %d moved, %d waiting; want 7 and 1", moved, waiting)
	}
	xLater := x
	xLater.Expires = x.Expires.Add(time.Hour)
	refused("x402, another expiry", xLater)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	sqlite.SetMoveNoncesAt(s, 3)
	refused("waiting, after a reopen", nonce(7))
	refused("moved, after a reopen", nonce(5))

	commitNonces(nonce(8))
	// Expired before t0 + 7m30s: 1–7 and the x402 nonce; 8 is waiting, not expired.
	cutoff := t0.Add(7*time.Minute + 30*time.Second)
	if n, err := s.DeleteNonces(ctx, cutoff, 100); err != nil || n != 8 {
		t.Fatalf("DeleteNonces = %d, %v; want 8", n, err)
	}
	if moved, waiting := counts(); moved != 0 || waiting != 1 {
		t.Fatalf("after the sweep: %d moved, %d waiting; want 0 and 1", moved, waiting)
	}
	for i := 1; i <= 7; i++ {
		if seen, _ := s.NonceSeen(ctx, nonce(i)); seen {
			t.Fatalf("nonce %d was swept but is still seen", i)
		}
	}
	refused("waiting, after the sweep", nonce(8))
}

// TestNonceSeenWhileMoved: a nonce is seen from the moment its commit
// returns, by readers racing the moves that take it from memory to the
// database (run it with -race).
func TestNonceSeenWhileMoved(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "paybound.db"))
	sqlite.SetMoveNoncesAt(s, 4)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var committed atomic.Int64
	nonce := func(i int64) pb.Nonce {
		return pb.Nonce{KeyID: "kid", Nonce: fmt.Sprintf("n%d", i), Expires: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var misses atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := int64(0); ; i++ {
				select {
				case <-done:
					return
				default:
				}
				// one of the newest four, which the next commits may move
				k := committed.Load() - 1 - i%4
				if k < 0 {
					continue
				}
				if seen, err := s.NonceSeen(t.Context(), nonce(k)); err != nil || !seen {
					misses.Add(1)
				}
			}
		})
	}
	for i := int64(0); i < 400; i++ {
		if err := s.Commit(t.Context(), &pb.Batch{AgentKeyPart: pb.AgentKeyPart{Nonces: []pb.Nonce{nonce(i)}}}); err != nil {
			t.Fatal(err)
		}
		committed.Store(i + 1)
	}
	close(done)
	wg.Wait()
	if m := misses.Load(); m > 0 {
		t.Fatalf("a committed nonce was not seen %d times", m)
	}
}
