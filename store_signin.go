package paybound

import (
	"context"
	"time"
)

// SignInStore is the storage of signing in to the wallet (internal/signin):
// one-time sign-in codes, the wrong codes tried per user, and the wallet's
// sessions. Its writes are single statements outside the ledger's batches
// (no money moves and nothing is logged), each atomic on its own, so that
// every process sharing the store sees the same codes, counts and sessions.
type SignInStore interface {
	// PutSignInCode stores c as its user's one live code, replacing any
	// earlier one (asking again voids the code asked for before).
	PutSignInCode(ctx context.Context, c SignInCode) error
	// SignInCode returns a user's live code, or an ErrNotFound error.
	SignInCode(ctx context.Context, userID string) (*SignInCode, error)
	// UseSignInCode deletes userID's code if its hash is still hash, and
	// reports whether it did: of several processes using one code at
	// once, exactly one gets true.
	UseSignInCode(ctx context.Context, userID string, hash []byte) (bool, error)
	// SignInGuard returns the wrong codes counted against userID (a zero
	// guard, with its UserID, when there are none).
	SignInGuard(ctx context.Context, userID string) (SignInGuard, error)
	// SignInFailed adds one wrong code to userID's count, in one atomic
	// statement: when the count reaches max, the user is locked until
	// lockUntil and the count starts again from 0. It returns the guard as
	// the statement left it.
	SignInFailed(ctx context.Context, userID string, max int, lockUntil time.Time) (SignInGuard, error)
	// ClearSignInFailures forgets userID's wrong codes (after a right
	// one); a lock still running is kept.
	ClearSignInFailures(ctx context.Context, userID string) error

	// PutWalletSession stores a new session.
	PutWalletSession(ctx context.Context, s WalletSession) error
	// WalletSession returns the session whose token hashes to hash, or
	// an ErrNotFound error; an expired one is returned as it is (the
	// caller checks ExpiresAt against its clock).
	WalletSession(ctx context.Context, hash []byte) (*WalletSession, error)
	// DeleteWalletSession deletes the session of hash (none is no error).
	DeleteWalletSession(ctx context.Context, hash []byte) error
	// DeleteWalletSessions deletes every session of the principal id and
	// returns how many there were.
	DeleteWalletSessions(ctx context.Context, principalID string) (int, error)
	// WalletSessions returns principal id's sessions, newest first, at
	// most limit.
	WalletSessions(ctx context.Context, principalID string, limit int) ([]WalletSession, error)
	// UseSignInChallenge records the passkey sign-in challenge of hash as
	// used until expires, and reports whether this was its first use: of
	// several processes using one at once, exactly one gets true.
	UseSignInChallenge(ctx context.Context, hash []byte, expires time.Time) (bool, error)
	// DeleteExpiredWalletSessions deletes up to limit sessions that
	// expired at or before cutoff, and up to limit used passkey sign-in
	// challenges past their expiry, and returns how many sessions it
	// deleted.
	DeleteExpiredWalletSessions(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// SignInCode is a one-time code that signs a user in to the wallet: asked
// for with the user's API key, entered in the browser with the user's ID.
// Only a hash of the code is stored.
type SignInCode struct {
	UserID    string
	Hash      []byte // SHA-256 of the user ID and the code
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SignInGuard is the wrong sign-in codes counted against a user, across
// every process and restart: Failures since the last right code or lock,
// and LockedUntil, before which no code signs the user in (zero: none).
type SignInGuard struct {
	UserID      string
	Failures    int
	LockedUntil time.Time
}

// WalletSession is a signed-in browser of the wallet. Only a hash of its
// token (the cookie's value) is stored, so that the table leaking hands
// out no session.
type WalletSession struct {
	TokenHash []byte // SHA-256 of the token
	Role      Role
	ID        string // the principal: usr_… or mch_…
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
}
