package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
)

// Signing in to the wallet (pb.SignInStore): single statements over the
// pool, the same SQL in both dialects. Times are Unix seconds, a lock's
// end 0 when there is none.

func (r Reads) PutSignInCode(ctx context.Context, c pb.SignInCode) error {
	_, err := r.DB.Exec(ctx, `INSERT INTO signin_codes (user_id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, created_at = excluded.created_at, expires_at = excluded.expires_at`,
		c.UserID, c.Hash, c.CreatedAt.Unix(), c.ExpiresAt.Unix())
	if err != nil {
		return fmt.Errorf("couldn't store the sign-in code of %s: %w", c.UserID, err)
	}
	return nil
}

func (r Reads) SignInCode(ctx context.Context, userID string) (*pb.SignInCode, error) {
	c := pb.SignInCode{UserID: userID}
	var created, expires int64
	err := r.DB.QueryRow(ctx, `SELECT code_hash, created_at, expires_at FROM signin_codes WHERE user_id = $1`, userID).
		Scan(&c.Hash, &created, &expires)
	if err != nil {
		return nil, found(err, "sign-in code of", userID)
	}
	c.CreatedAt, c.ExpiresAt = unix(created), unix(expires)
	return &c, nil
}

func (r Reads) UseSignInCode(ctx context.Context, userID string, hash []byte) (bool, error) {
	n, err := r.DB.Exec(ctx, `DELETE FROM signin_codes WHERE user_id = $1 AND code_hash = $2`, userID, hash)
	if err != nil {
		return false, fmt.Errorf("couldn't use the sign-in code of %s: %w", userID, err)
	}
	return n == 1, nil
}

func (r Reads) SignInGuard(ctx context.Context, userID string) (pb.SignInGuard, error) {
	g := pb.SignInGuard{UserID: userID}
	var locked int64
	err := r.DB.QueryRow(ctx, `SELECT failures, locked_until FROM signin_guards WHERE user_id = $1`, userID).Scan(&g.Failures, &locked)
	if err != nil {
		if errors.Is(err, ErrNoRows) {
			return g, nil
		}
		return g, fmt.Errorf("couldn't read the sign-in guard of %s: %w", userID, err)
	}
	g.LockedUntil = lockTime(locked)
	return g, nil
}

// SignInFailed counts a wrong code in one statement: the SET expressions
// read the row as it was, so concurrent failures each add one, and the
// one that reaches max sets the lock and restarts the count.
func (r Reads) SignInFailed(ctx context.Context, userID string, max int, lockUntil time.Time) (pb.SignInGuard, error) {
	g := pb.SignInGuard{UserID: userID}
	var locked int64
	first, firstLock := 1, int64(0)
	if max <= 1 {
		first, firstLock = 0, lockUntil.Unix()
	}
	err := r.DB.QueryRow(ctx, `INSERT INTO signin_guards (user_id, failures, locked_until) VALUES ($1, $4, $5)
		ON CONFLICT (user_id) DO UPDATE SET
			failures = CASE WHEN signin_guards.failures + 1 >= $2 THEN 0 ELSE signin_guards.failures + 1 END,
			locked_until = CASE WHEN signin_guards.failures + 1 >= $2 THEN $3 ELSE signin_guards.locked_until END
		RETURNING failures, locked_until`, userID, int64(max), lockUntil.Unix(), int64(first), firstLock).Scan(&g.Failures, &locked)
	if err != nil {
		return g, fmt.Errorf("couldn't count a wrong sign-in code of %s: %w", userID, err)
	}
	g.LockedUntil = lockTime(locked)
	return g, nil
}

func (r Reads) ClearSignInFailures(ctx context.Context, userID string) error {
	if _, err := r.DB.Exec(ctx, `UPDATE signin_guards SET failures = 0 WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("couldn't clear the wrong sign-in codes of %s: %w", userID, err)
	}
	return nil
}

// lockTime reads back a lock's end: 0 is none.
func lockTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return unix(sec)
}

func (r Reads) PutWalletSession(ctx context.Context, s pb.WalletSession) error {
	_, err := r.DB.Exec(ctx, `INSERT INTO wallet_sessions (token_hash, role, principal_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		s.TokenHash, string(s.Role), s.ID, s.UserID, s.CreatedAt.Unix(), s.ExpiresAt.Unix())
	if err != nil {
		return fmt.Errorf("couldn't store a wallet session of %s: %w", s.ID, err)
	}
	return nil
}

const walletSessionCols = `token_hash, role, principal_id, user_id, created_at, expires_at`

func scanWalletSession(row Scanner) (*pb.WalletSession, error) {
	var s pb.WalletSession
	var role string
	var created, expires int64
	if err := row.Scan(&s.TokenHash, &role, &s.ID, &s.UserID, &created, &expires); err != nil {
		return nil, err
	}
	s.Role, s.CreatedAt, s.ExpiresAt = pb.Role(role), unix(created), unix(expires)
	return &s, nil
}

func (r Reads) WalletSession(ctx context.Context, hash []byte) (*pb.WalletSession, error) {
	s, err := scanWalletSession(r.DB.QueryRow(ctx, `SELECT `+walletSessionCols+` FROM wallet_sessions WHERE token_hash = $1`, hash))
	if err != nil {
		return nil, found(err, "wallet session", "")
	}
	return s, nil
}

func (r Reads) DeleteWalletSession(ctx context.Context, hash []byte) error {
	if _, err := r.DB.Exec(ctx, `DELETE FROM wallet_sessions WHERE token_hash = $1`, hash); err != nil {
		return fmt.Errorf("couldn't delete a wallet session: %w", err)
	}
	return nil
}

func (r Reads) DeleteWalletSessions(ctx context.Context, principalID string) (int, error) {
	n, err := r.DB.Exec(ctx, `DELETE FROM wallet_sessions WHERE principal_id = $1`, principalID)
	if err != nil {
		return 0, fmt.Errorf("couldn't delete the wallet sessions of %s: %w", principalID, err)
	}
	return int(n), nil
}

func (r Reads) WalletSessions(ctx context.Context, principalID string, limit int) ([]pb.WalletSession, error) {
	out, err := collect(ctx, r.DB, []pb.WalletSession{}, scanWalletSession,
		`SELECT `+walletSessionCols+` FROM wallet_sessions WHERE principal_id = $1 ORDER BY created_at DESC, token_hash LIMIT $2`, principalID, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("couldn't read the wallet sessions of %s: %w", principalID, err)
	}
	return out, nil
}

func (r Reads) DeleteExpiredWalletSessions(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n, err := r.DB.Exec(ctx, `DELETE FROM wallet_sessions WHERE token_hash IN
		(SELECT token_hash FROM wallet_sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)`, cutoff.Unix(), int64(limit))
	if err != nil {
		return 0, fmt.Errorf("couldn't delete expired wallet sessions: %w", err)
	}
	if _, err := r.DB.Exec(ctx, `DELETE FROM wallet_challenges WHERE hash IN
		(SELECT hash FROM wallet_challenges WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)`, cutoff.Unix(), int64(limit)); err != nil {
		return 0, fmt.Errorf("couldn't delete used passkey challenges: %w", err)
	}
	return int(n), nil
}

func (r Reads) UseSignInChallenge(ctx context.Context, hash []byte, expires time.Time) (bool, error) {
	n, err := r.DB.Exec(ctx, `INSERT INTO wallet_challenges (hash, expires_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING`, hash, expires.Unix())
	if err != nil {
		return false, fmt.Errorf("couldn't use a passkey sign-in challenge: %w", err)
	}
	return n == 1, nil
}
