package confirm

import (
	"context"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/stepup"
)

// TOTP errors.
var (
	errTOTPInvalid = pb.Errorf(pb.ErrTOTPInvalid, "code", "the code is wrong, already used, or from another time; use the current one")
	errTOTPActive  = pb.Errorf(pb.ErrTOTPState, "", "a one-time-code factor is already active for this user; it cannot be replaced with an API key alone")
	errTOTPNone    = pb.Errorf(pb.ErrTOTPState, "", "no one-time-code factor is being enrolled; POST /v1/totp first")
)

// TOTPEnrolment is the answer to EnrollTOTP: the secret to put in an
// authenticator app (base32, and as an otpauth:// URL for a QR code).
type TOTPEnrolment struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
	Active     bool   `json:"active"`
}

// EnrollTOTP (user) starts enrolling a one-time-code factor, replacing one
// not yet verified. An active factor is never replaced this way: anyone
// holding the API key could otherwise swap in their own and approve
// payments with it.
func (s *Service) EnrollTOTP(ctx context.Context, caller pb.Principal, idem *service.Idempotency) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		f, err := tx.TOTP(caller.ID)
		switch {
		case err == nil && f.Active:
			return nil, errTOTPActive
		case err != nil && pb.ErrorCode(err) != pb.ErrNotFound:
			return nil, err
		}
		secret, enc := stepup.NewTOTPSecret()
		tx.PutTOTP(pb.TOTPFactor{UserID: caller.ID, Secret: s.core.Seal(secret), CreatedAt: tx.Now().Truncate(time.Second)})
		return &TOTPEnrolment{Secret: enc, OTPAuthURL: stepup.TOTPURL("Paybound", caller.ID, secret)}, nil
	})
}

// VerifyTOTP (user) activates the factor being enrolled with a current code.
func (s *Service) VerifyTOTP(ctx context.Context, caller pb.Principal, idem *service.Idempotency, code string) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	if len(code) != stepup.TOTPDigits {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "code", "code must be the %d digits the authenticator app shows", stepup.TOTPDigits)}
	}
	if err := s.guessAllowed(caller.ID, "totp_enrolment"); err != nil {
		return service.Result{Err: err}
	}
	r := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		f, err := tx.TOTP(caller.ID)
		switch {
		case pb.ErrorCode(err) == pb.ErrNotFound:
			return nil, errTOTPNone
		case err != nil:
			return nil, err
		case f.Active:
			return nil, errTOTPActive
		}
		step, err := s.checkTOTP(tx, &f, code)
		if pb.ErrorCode(err) == pb.ErrTOTPInvalid {
			return nil, ledger.Unstored(err)
		}
		if err != nil {
			return nil, err
		}
		f.Active, f.LastStep = true, step
		tx.PutTOTP(f)
		return &TOTPEnrolment{Active: true}, nil
	})
	if pb.ErrorCode(r.Err) == pb.ErrTOTPInvalid {
		s.codeFailed(caller.ID, "totp_enrolment")
	}
	return r
}

// checkTOTP verifies code against f's secret at the batch's time, refusing
// a step already used.
func (s *Service) checkTOTP(tx *ledger.Tx, f *pb.TOTPFactor, code string) (int64, error) {
	secret, err := s.core.Open(f.Secret)
	if err != nil {
		return 0, err
	}
	step, ok := stepup.VerifyTOTP(secret, code, tx.Now(), f.LastStep)
	if !ok {
		return 0, errTOTPInvalid
	}
	return step, nil
}
