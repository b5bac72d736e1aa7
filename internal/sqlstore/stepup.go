package sqlstore

import (
	"context"
	"errors"

	pb "github.com/paybound/paybound"
)

// Step-up's tables: a TOTP factor is replaced whole; a passkey's
// credential may be replaced, but a revocation, once stored, stays.
var (
	TOTP = NewTable("user_totp", "user_id, secret, active, last_step, created_at",
		` ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, active = excluded.active,
		last_step = excluded.last_step, created_at = excluded.created_at`)
	Passkeys = NewTable("passkeys", "id, user_id, credential, created_at, revoked_at",
		` ON CONFLICT (id) DO UPDATE SET credential = excluded.credential,
		revoked_at = COALESCE(passkeys.revoked_at, excluded.revoked_at)`)
)

func TOTPRow(d []any, f *pb.TOTPFactor) ([]any, error) {
	return append(d, f.UserID, f.Secret, f.Active, f.LastStep, f.CreatedAt.Unix()), nil
}

func PasskeyRow(d []any, k *pb.Passkey) ([]any, error) {
	return append(d, k.ID, k.UserID, k.Credential, k.CreatedAt.Unix(), unixOrNil(k.RevokedAt)), nil
}

func (r Reads) TOTP(ctx context.Context, userID string) (*pb.TOTPFactor, error) {
	f := pb.TOTPFactor{UserID: userID}
	var created int64
	err := r.DB.QueryRow(ctx, `SELECT secret, active, last_step, created_at FROM user_totp WHERE user_id = $1`, userID).
		Scan(&f.Secret, &f.Active, &f.LastStep, &created)
	if err != nil {
		return nil, found(err, "TOTP factor", userID)
	}
	f.CreatedAt = unix(created)
	return &f, nil
}

func (r Reads) CodeFailures(ctx context.Context, confirmationID string) (int, error) {
	var n int
	err := r.DB.QueryRow(ctx, `SELECT failures FROM confirmation_failures WHERE confirmation_id = $1`, confirmationID).Scan(&n)
	if errors.Is(err, ErrNoRows) {
		return 0, nil
	}
	return n, err
}

func (r Reads) Passkeys(ctx context.Context, userID string) ([]pb.Passkey, error) {
	return collect(ctx, r.DB, nil, func(row Scanner) (*pb.Passkey, error) {
		k := pb.Passkey{UserID: userID}
		var created int64
		var revoked *int64
		if err := row.Scan(&k.ID, &k.Credential, &created, &revoked); err != nil {
			return nil, err
		}
		k.CreatedAt, k.RevokedAt = unix(created), unixPtr(revoked)
		return &k, nil
	}, `SELECT id, credential, created_at, revoked_at FROM passkeys WHERE user_id = $1 ORDER BY created_at, id`, userID)
}
