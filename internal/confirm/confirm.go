// Package confirm is the step-up capability: a user's one-time-code
// (TOTP) factor and passkeys, and the confirmations with which the user
// approves, with one of them, or denies a payment that waits for them
// (requires_confirmation), with the limit on wrong one-time codes. It runs
// over the payments core (Core) and its own store interface, and offers its
// routes to the REST API (Routes). Asking for a confirmation, and expiring
// one whose time ran out, are the core's; so is placing the hold of an
// approved payment (Core.AuthorizeApproved).
package confirm

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/stepup"
)

// Core is what step-up needs of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// Noted records the payment a committed operation returned in risk
	// control's book of its payer, and returns r.
	Noted(r service.Result) service.Result
	// Merchant returns merchant id, or nil when there is none.
	Merchant(ctx context.Context, id string) (*pb.Merchant, error)
	// ExpireIfDue expires p, inside tx, when its confirmation (or its
	// hold) ran out, and reports whether it did.
	ExpireIfDue(tx *ledger.Tx, p *pb.Payment) (bool, error)
	// AuthorizeApproved places the hold of p, which its user has just
	// approved, inside tx, or declines it, and logs the outcome; the
	// caller logs the approval first and puts p.
	AuthorizeApproved(tx *ledger.Tx, p *pb.Payment, merchant *pb.Merchant, actor pb.Actor) error
	// Seal and Open keep the one-time-code secrets sealed in the store.
	Seal(b []byte) []byte
	Open(b []byte) ([]byte, error)
}

// Store is what step-up reads: its own rows, the users whose factors they
// are, and the payments that wait for them.
type Store interface {
	pb.StepUpStore
	User(ctx context.Context, id string) (*pb.User, error)
	PaymentByConfirmation(ctx context.Context, id string) (*pb.Payment, error)
	ListPayments(ctx context.Context, f pb.PaymentFilter) (_ []pb.Payment, hasMore bool, _ error)
}

// Config configures step-up. Zero values take the documented defaults.
type Config struct {
	// OperatorKey is the operator's bearer secret, the core's: passkey
	// challenges are keyed with a key derived from it, so that every
	// process of a deployment can finish a ceremony another began.
	OperatorKey string
	// PasskeyRPID is the WebAuthn relying party ID, the site's domain
	// (default "localhost"); PasskeyOrigins are the origins the browser may
	// report (default http://localhost:8080).
	PasskeyRPID    string
	PasskeyOrigins []string
	Clock          pb.Clock     // default: wall clock
	Logger         *slog.Logger // default: discard; security events are logged here
}

// Service is the step-up capability. Safe for concurrent use.
type Service struct {
	core  Core
	st    Store
	clock pb.Clock
	log   *slog.Logger
	// webauthn verifies passkey ceremonies; passkeyMAC keys their
	// challenges, which are derived rather than stored.
	webauthn   *webauthn.WebAuthn
	passkeyMAC []byte
	guesses    guessLimiter
}

// New returns step-up over core and st.
func New(core Core, st Store, cfg Config) (*Service, error) {
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	wa, macKey, err := newPasskeys(&cfg)
	if err != nil {
		return nil, err
	}
	return &Service{core: core, st: st, clock: cfg.Clock, log: cfg.Logger, webauthn: wa, passkeyMAC: macKey}, nil
}

// approvedData is the data of the entries step-up logs about a payment
// (confirmation.approved, confirmation.denied); its fields are in JSON-name
// order, so it encodes canonically as it is.
type approvedData struct {
	ConfirmationID string `json:"confirmation_id"`
	Factor         string `json:"factor"` // "totp" or "passkey"
	PasskeyID      []byte `json:"passkey_id,omitempty"`
}

var errNoFactor = pb.Errorf(pb.ErrTOTPState, "", "approving with a code needs a one-time-code factor: enroll one first (POST /v1/totp), or approve with a passkey")

func noConfirmation(id string) error {
	return pb.Errorf(pb.ErrNotFound, "id", "no such confirmation: %s", id)
}

// confirmable finds the payment of confirmation id for its payer, outside
// the writer (the writer then re-reads it).
func (s *Service) confirmable(ctx context.Context, caller pb.Principal, id string) (*pb.Payment, error) {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return nil, err
	}
	if !pb.HasPrefix(id, pb.PrefixConfirmation) {
		return nil, noConfirmation(id)
	}
	p, err := s.st.PaymentByConfirmation(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && p.PayerID != caller.ID) {
		return nil, noConfirmation(id)
	}
	return p, err
}

// pending re-reads the payment inside the writer and checks that it still
// waits for the user; a confirmation past its expiry expires the payment.
func (s *Service) pending(tx *ledger.Tx, id string) (pb.Payment, error) {
	p, err := tx.Payment(id)
	if err != nil {
		return p, err
	}
	if expired, err := s.core.ExpireIfDue(tx, &p); err != nil || expired {
		return p, cmp.Or[error](err, pb.Errorf(pb.ErrPaymentState, "", "the confirmation of payment %s expired; the agent must ask again", p.ID))
	}
	if p.Status != pb.StatusRequiresConfirmation {
		return p, pb.Errorf(pb.ErrPaymentState, "", "payment %s is %s; it no longer waits for confirmation", p.ID, p.Status)
	}
	return p, nil
}

// ApproveWithTOTP (user) approves a payment waiting for confirmation with a
// current one-time code. The code is consumed whatever follows; the hold is
// then placed (the payment becomes authorized, or captured when its capture
// method is automatic) or, if the funds are gone meanwhile, or its mandate
// was revoked or expired or has too little budget left, the payment is
// declined: the user's approval answers for the amount, not for a mandate
// that no longer carries the payment. An approval names one confirmation and so one payment: it can
// never approve another, and a code is accepted once.
func (s *Service) ApproveWithTOTP(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id, code string) service.Result {
	if len(code) != stepup.TOTPDigits {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "totp", "totp must be the %d digits your authenticator app shows", stepup.TOTPDigits)}
	}
	found, err := s.confirmable(ctx, caller, id)
	if err != nil {
		return service.Result{Err: err}
	}
	if err := s.guessAllowed(caller.ID, id); err != nil {
		return service.Result{Err: err}
	}
	// A locked confirmation is refused before the writer: guesses at it
	// cost one read and write nothing.
	if n, err := s.st.CodeFailures(ctx, id); err != nil || n >= pb.MaxConfirmationCodeFailures {
		return service.Result{Err: cmp.Or[error](err, s.locked(caller.ID, id))}
	}
	merchant, err := s.core.Merchant(ctx, found.MerchantID)
	if err != nil {
		return service.Result{Err: err}
	}
	failed := 0
	r := s.core.Noted(s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p, err := s.pending(tx, found.ID)
		if err != nil {
			return nil, err
		}
		f, err := tx.TOTP(caller.ID)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && !f.Active) {
			return nil, errNoFactor
		}
		if err != nil {
			return nil, err
		}
		n, err := tx.CodeFailures(id)
		if err != nil {
			return nil, err
		}
		if n >= pb.MaxConfirmationCodeFailures {
			return nil, ledger.Unstored(s.locked(caller.ID, id))
		}
		step, err := s.checkTOTP(tx, &f, code)
		if pb.ErrorCode(err) == pb.ErrTOTPInvalid {
			// Counted in the store, where every process sees it, and not
			// stored as the key's answer (ledger.Unstored).
			tx.AddCodeFailure(id)
			failed = n + 1
			return nil, ledger.Unstored(wrongCode(failed))
		}
		if err != nil {
			return nil, err
		}
		f.LastStep = step
		tx.PutTOTP(f)
		err = s.approve(tx, &p, caller, approvedData{ConfirmationID: p.Confirmation.ID, Factor: "totp"}, merchant)
		tx.PutPayment(p)
		return &p, err
	}))
	if failed > 0 && pb.ErrorCode(r.Err) == pb.ErrTOTPInvalid {
		s.codeFailed(caller.ID, id, "failures", failed, "locked", failed >= pb.MaxConfirmationCodeFailures)
	}
	return r
}

// wrongCode is the answer to the failed-th wrong code on a confirmation.
func wrongCode(failed int) error {
	left := pb.MaxConfirmationCodeFailures - failed
	if left <= 0 {
		return pb.Errorf(pb.ErrTOTPInvalid, "totp", "the code is wrong, already used, or from another time; after %d wrong codes this confirmation accepts only the user's passkey",
			pb.MaxConfirmationCodeFailures)
	}
	return pb.Errorf(pb.ErrTOTPInvalid, "totp", "the code is wrong, already used, or from another time; %d more wrong codes lock this confirmation against codes", left)
}

// locked refuses a code on a confirmation that took too many wrong ones,
// and logs the attempt as a security event.
func (s *Service) locked(user, id string) error {
	s.log.Warn("security event: code tried on a locked confirmation", "event", "confirmation_locked", "user", user, "confirmation", id)
	return pb.Errorf(pb.ErrConfirmationLocked, "totp", "confirmation %s took %d wrong one-time codes and accepts only the user's passkey now; or deny it and let the agent ask again",
		id, pb.MaxConfirmationCodeFailures)
}

// approve logs the user's approval and places the hold of the approved
// payment: it lasts as long as the agent asked, from now.
func (s *Service) approve(tx *ledger.Tx, p *pb.Payment, caller pb.Principal, how approvedData, merchant *pb.Merchant) error {
	service.LogPayment(tx, p, pb.ActorOf(caller), pb.LogConfirmationApproved, how)
	return s.core.AuthorizeApproved(tx, p, merchant, pb.ActorOf(caller))
}

// Deny (user) refuses a payment waiting for confirmation: it becomes
// canceled. Denying needs no factor: it can only stop a payment.
func (s *Service) Deny(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	found, err := s.confirmable(ctx, caller, id)
	if err != nil {
		return service.Result{Err: err}
	}
	return s.core.Noted(s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p, err := s.pending(tx, found.ID)
		if err != nil {
			return nil, err
		}
		p.Status = pb.StatusCanceled
		service.LogPayment(tx, &p, pb.ActorOf(caller), pb.LogConfirmationDenied, approvedData{ConfirmationID: p.Confirmation.ID})
		tx.PutPayment(p)
		return &p, nil
	}))
}

// ConfirmationView is a payment waiting for its user, as the user's list of
// pending confirmations shows it.
type ConfirmationView struct {
	ID        string      `json:"id"`
	Object    string      `json:"object"` // "confirmation"
	Status    string      `json:"status"` // "pending"
	URL       string      `json:"url"`
	ExpiresAt time.Time   `json:"expires_at"`
	Payment   *pb.Payment `json:"payment"`
}

// PendingConfirmations (user) lists the payments waiting for the caller's
// approval, newest first; startingAfter is the last confirmation ID of the
// previous page. One whose time ran out is left out: the sweeper expires it.
func (s *Service) PendingConfirmations(ctx context.Context, caller pb.Principal, startingAfter string, limit int) ([]ConfirmationView, bool, error) {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return nil, false, err
	}
	f := pb.PaymentFilter{PayerID: caller.ID, Status: pb.StatusRequiresConfirmation, Limit: limit}
	if startingAfter != "" {
		p, err := s.confirmable(ctx, caller, startingAfter)
		if err != nil {
			return nil, false, pb.Errorf(pb.ErrParameterInvalid, "starting_after", "starting_after must be a confirmation ID of the previous page: %v", err)
		}
		f.StartingAfter = p.ID
	}
	ps, more, err := s.st.ListPayments(ctx, f)
	if err != nil {
		return nil, false, err
	}
	now := s.clock.Now()
	out := make([]ConfirmationView, 0, len(ps))
	for i := range ps {
		p := service.Shown(&ps[i], caller)
		if p.Confirmation == nil || !now.Before(p.Confirmation.ExpiresAt) {
			continue
		}
		out = append(out, ConfirmationView{ID: p.Confirmation.ID, Object: "confirmation", Status: "pending",
			URL: p.Confirmation.URL, ExpiresAt: p.Confirmation.ExpiresAt, Payment: p})
	}
	return out, more, nil
}
