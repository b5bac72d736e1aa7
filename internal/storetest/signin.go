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

// testWalletSessions: a session reads back by its hash; a party's are
// listed newest first, deleted one by one or all at once; expired ones
// are deleted up to the limit, oldest expiry first, and the live kept.
func testWalletSessions(t *testing.T, s pb.Store) {
	ctx := t.Context()
	_, err := s.WalletSession(ctx, bytes.Repeat([]byte{9}, 32))
	wantNotFound(t, "WalletSession before any", err)
	sess := func(b byte, id string, created time.Time, ttl time.Duration) pb.WalletSession {
		role, user := pb.RoleUser, id
		if id[:4] == "mch_" {
			role, user = pb.RoleMerchant, ""
		}
		return pb.WalletSession{TokenHash: bytes.Repeat([]byte{b}, 32), Role: role, ID: id, UserID: user, CreatedAt: created, ExpiresAt: created.Add(ttl)}
	}
	a1 := sess(1, "usr_alice", t0, time.Hour)
	a2 := sess(2, "usr_alice", t0.Add(time.Minute), 12*time.Hour)
	a3 := sess(3, "usr_alice", t0.Add(2*time.Minute), 12*time.Hour)
	m1 := sess(4, "mch_cafe", t0, 30*time.Minute)
	for _, x := range []pb.WalletSession{a1, a2, a3, m1} {
		if err := s.PutWalletSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutWalletSession(ctx, a1); err == nil {
		t.Fatal("a session's token hash was stored twice")
	}
	got, err := s.WalletSession(ctx, m1.TokenHash)
	if err != nil || got.Role != pb.RoleMerchant || got.ID != "mch_cafe" || got.UserID != "" ||
		!got.CreatedAt.Equal(sec(m1.CreatedAt)) || !got.ExpiresAt.Equal(sec(m1.ExpiresAt)) || !bytes.Equal(got.TokenHash, m1.TokenHash) {
		t.Fatalf("WalletSession = %+v, %v; want %+v", got, err, m1)
	}
	list, err := s.WalletSessions(ctx, "usr_alice", 2)
	if err != nil || len(list) != 2 || !bytes.Equal(list[0].TokenHash, a3.TokenHash) || !bytes.Equal(list[1].TokenHash, a2.TokenHash) || list[0].UserID != "usr_alice" {
		t.Fatalf("WalletSessions(usr_alice, 2) = %+v, %v", list, err)
	}
	if err := s.DeleteWalletSession(ctx, a3.TokenHash); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWalletSession(ctx, a3.TokenHash); err != nil {
		t.Fatalf("deleting a deleted session: %v", err)
	}
	_, err = s.WalletSession(ctx, a3.TokenHash)
	wantNotFound(t, "a deleted session", err)

	// Expired at t0+1h: m1 (t0+30m) and a1 (t0+1h); limit 1 takes m1.
	if n, err := s.DeleteExpiredWalletSessions(ctx, t0.Add(time.Hour), 1); n != 1 || err != nil {
		t.Fatalf("DeleteExpiredWalletSessions(limit 1) = %d, %v", n, err)
	}
	_, err = s.WalletSession(ctx, m1.TokenHash)
	wantNotFound(t, "the session expired first", err)
	if n, err := s.DeleteExpiredWalletSessions(ctx, t0.Add(time.Hour), 100); n != 1 || err != nil {
		t.Fatalf("DeleteExpiredWalletSessions again = %d, %v", n, err)
	}
	if _, err := s.WalletSession(ctx, a2.TokenHash); err != nil {
		t.Fatalf("a live session was swept: %v", err)
	}
	if n, err := s.DeleteWalletSessions(ctx, "usr_alice"); n != 1 || err != nil {
		t.Fatalf("DeleteWalletSessions = %d, %v", n, err)
	}
	if list, err := s.WalletSessions(ctx, "usr_alice", 10); len(list) != 0 || err != nil {
		t.Fatalf("after deleting all: %+v, %v", list, err)
	}
}

// testSignInChallenges: a passkey sign-in challenge is used once, also
// when used at once; used ones are swept once expired, with the sessions.
func testSignInChallenges(t *testing.T, s pb.Store) {
	ctx := t.Context()
	h1, h2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			first, err := s.UseSignInChallenge(ctx, h1, t0.Add(5*time.Minute))
			if err != nil {
				t.Error(err)
			}
			if first {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("a challenge was used %d times", wins)
	}
	if first, err := s.UseSignInChallenge(ctx, h2, t0.Add(10*time.Minute)); !first || err != nil {
		t.Fatalf("another challenge: %v, %v", first, err)
	}
	// Swept once expired: h1 (t0+5m) at t0+6m, not h2; then h1 is new again.
	if _, err := s.DeleteExpiredWalletSessions(ctx, t0.Add(6*time.Minute), 100); err != nil {
		t.Fatal(err)
	}
	if first, err := s.UseSignInChallenge(ctx, h2, t0.Add(10*time.Minute)); first || err != nil {
		t.Fatalf("a live used challenge after the sweep: %v, %v", first, err)
	}
	if first, err := s.UseSignInChallenge(ctx, h1, t0.Add(5*time.Minute)); !first || err != nil {
		t.Fatalf("a swept challenge: %v, %v", first, err)
	}
}
