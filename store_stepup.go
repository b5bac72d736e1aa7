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

// StepUpPart is step-up authentication's share of a Batch: users' one-time
// code factors and passkeys, and the wrong codes tried on confirmations.
type StepUpPart struct {
	// TOTP factors are inserted or replaced whole.
	TOTP []TOTPFactor
	// CodeFailures names a confirmation once for each wrong one-time code
	// tried on it; a store adds them to the confirmation's stored count.
	CodeFailures []string
	// Passkeys are inserted, or have their credential replaced, by
	// credential ID; a revocation, once stored, is never undone.
	Passkeys []Passkey
}

// Empty reports whether p writes nothing.
func (p *StepUpPart) Empty() bool { return len(p.TOTP)+len(p.CodeFailures)+len(p.Passkeys) == 0 }
