package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// testSignInCodes: a user has one live code, replaced whole by the next;
// it is used once, and only with its own hash; users are apart.
func testSignInCodes(t *testing.T, s pb.Store) {
	ctx := t.Context()
	_, err := s.SignInCode(ctx, "usr_alice")
	wantNotFound(t, "SignInCode before any", err)
	c1 := pb.SignInCode{UserID: "usr_alice", Hash: bytes.Repeat([]byte{1}, 32), CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	c2 := pb.SignInCode{UserID: "usr_alice", Hash: bytes.Repeat([]byte{2}, 32), CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(11 * time.Minute)}
	bob := pb.SignInCode{UserID: "usr_bob", Hash: bytes.Repeat([]byte{1}, 32), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	for _, c := range []pb.SignInCode{c1, bob, c2} {
		if err := s.PutSignInCode(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.SignInCode(ctx, "usr_alice")
	if err != nil || !bytes.Equal(got.Hash, c2.Hash) || !got.CreatedAt.Equal(sec(c2.CreatedAt)) || !got.ExpiresAt.Equal(sec(c2.ExpiresAt)) {
		t.Fatalf("SignInCode after replacing = %+v, %v; want %+v", got, err, c2)
	}
	if ok, err := s.UseSignInCode(ctx, "usr_alice", c1.Hash); ok || err != nil {
		t.Fatalf("UseSignInCode with the replaced code's hash = %v, %v", ok, err)
	}
	// Of several uses at once, one succeeds.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			ok, err := s.UseSignInCode(ctx, "usr_alice", c2.Hash)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("a code was used %d times", wins)
	}
	_, err = s.SignInCode(ctx, "usr_alice")
	wantNotFound(t, "SignInCode after use", err)
	if got, err := s.SignInCode(ctx, "usr_bob"); err != nil || !bytes.Equal(got.Hash, bob.Hash) {
		t.Fatalf("another user's code after use = %+v, %v", got, err)
	}
}

// testSignInGuards: wrong codes add up per user, also when counted at
// once; the one that reaches the limit locks the user and restarts the
// count; clearing keeps the lock.
func testSignInGuards(t *testing.T, s pb.Store) {
	ctx := t.Context()
	if g, err := s.SignInGuard(ctx, "usr_alice"); err != nil || g != (pb.SignInGuard{UserID: "usr_alice"}) {
		t.Fatalf("SignInGuard before any = %+v, %v", g, err)
	}
	lock := t0.Add(15 * time.Minute)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.SignInFailed(ctx, "usr_alice", 5, lock); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g, err := s.SignInGuard(ctx, "usr_alice"); err != nil || g.Failures != 4 || !g.LockedUntil.IsZero() {
		t.Fatalf("after 4 concurrent failures: %+v, %v", g, err)
	}
	g, err := s.SignInFailed(ctx, "usr_alice", 5, lock)
	if err != nil || g.Failures != 0 || !g.LockedUntil.Equal(sec(lock)) {
		t.Fatalf("the 5th failure = %+v, %v; want locked until %v", g, err, lock)
	}
	if g, err := s.SignInGuard(ctx, "usr_bob"); err != nil || g.Failures != 0 || !g.LockedUntil.IsZero() {
		t.Fatalf("another user = %+v, %v", g, err)
	}
	if g, err := s.SignInFailed(ctx, "usr_alice", 5, lock.Add(time.Hour)); err != nil || g.Failures != 1 || !g.LockedUntil.Equal(sec(lock)) {
		t.Fatalf("a failure after the lock = %+v, %v", g, err)
	}
	if err := s.ClearSignInFailures(ctx, "usr_alice"); err != nil {
		t.Fatal(err)
	}
	if g, err := s.SignInGuard(ctx, "usr_alice"); err != nil || g.Failures != 0 || !g.LockedUntil.Equal(sec(lock)) {
		t.Fatalf("after clearing = %+v, %v", g, err)
	}
	if err := s.ClearSignInFailures(ctx, "usr_nobody"); err != nil {
		t.Fatalf("clearing a user with no guard: %v", err)
	}
}
