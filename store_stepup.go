package paybound

import "context"

// StepUpStore is the storage of step-up authentication: users' one-time
// code (TOTP) factors and passkeys, and the wrong codes tried on a
// payment's confirmation.
type StepUpStore interface {
	// TOTP returns a user's one-time-code factor, or an ErrNotFound error.
	TOTP(ctx context.Context, userID string) (*TOTPFactor, error)
	// CodeFailures returns how many wrong one-time codes were tried on a
	// confirmation (0 when none).
	CodeFailures(ctx context.Context, confirmationID string) (int, error)
	// Passkeys returns a user's passkeys, oldest first.
	Passkeys(ctx context.Context, userID string) ([]Passkey, error)
}
