package service_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/descope/virtualwebauthn"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/stepup"
)

// wrongCodeFor returns a 6-digit code that is not the current one.
func wrongCodeFor(secret []byte, w *mandateWorld, i int) string {
	right := stepup.TOTPCode(secret, w.clock.Now())
	c := fmt.Sprintf("%06d", (i*7919+123457)%1_000_000)
	if c == right {
		c = fmt.Sprintf("%06d", (i*7919+123458)%1_000_000)
	}
	return c
}

// TestCodeGuessing: a confirmation takes 5 wrong one-time codes, then is
// locked against codes (the right one too) but still approved by the
// user's passkey; wrong codes are not stored as idempotent answers; a user
// who gets 10 codes wrong within 15 minutes is rate-limited with a
// Retry-After, across confirmations, until the window passes; and a code
// is never accepted twice.
func TestCodeGuessing(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	ctx := context.Background()
	e := must[*confirm.TOTPEnrolment](t, w.confirm.EnrollTOTP(ctx, w.user, nil))
	secret, _ := stepup.DecodeTOTPSecret(e.Secret)
	must[*confirm.TOTPEnrolment](t, w.confirm.VerifyTOTP(ctx, w.user, nil, stepup.TOTPCode(secret, w.clock.Now())))
	w.clock.Advance(stepup.TOTPStep)
	render := func(v any, err error) (int, []byte) {
		if err != nil {
			return 400, []byte(err.Error())
		}
		return 200, []byte("ok")
	}
	guess := 0
	try := func(cfm, code string) error {
		guess++
		idem := &service.Idempotency{Caller: w.user.ID, Key: fmt.Sprintf("guess-%d", guess), Hash: [32]byte{byte(guess)}, Render: render}
		return w.confirm.ApproveWithTOTP(ctx, w.user, idem, cfm, code).Err
	}
	waiting := func() *pb.Payment {
		p, err := w.pay(w.agent, "", w.cafe.ID, 500, "CNY")
		if err != nil || p.Status != pb.StatusRequiresConfirmation {
			t.Fatalf("a payment without a mandate: %+v %v", p, err)
		}
		return p
	}

	first := waiting()
	for i := range pb.MaxConfirmationCodeFailures {
		if err := try(first.Confirmation.ID, wrongCodeFor(secret, w, i)); pb.ErrorCode(err) != pb.ErrTOTPInvalid {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	if err := try(first.Confirmation.ID, stepup.TOTPCode(secret, w.clock.Now())); pb.ErrorCode(err) != pb.ErrConfirmationLocked {
		t.Fatalf("the right code on a locked confirmation: %v", err)
	}
	var keys []pb.IdempotencyKey
	for i := 1; i <= guess; i++ {
		keys = append(keys, pb.IdempotencyKey{Caller: w.user.ID, Key: fmt.Sprintf("guess-%d", i)})
	}
	if recs, err := w.st.LookupIdempotency(ctx, keys); err != nil || len(recs) != 0 {
		t.Fatalf("failed guesses stored %d idempotency records (%v)", len(recs), err)
	}
	if p, _ := w.svc.Payment(ctx, w.user, first.ID); p.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("after the guesses: %+v", p)
	}
	// The user's passkey still approves it.
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(w.user.ID)})
	cred := registerPasskey(t, w.confirm, w.user, &auth)
	a := must[*pb.Payment](t, w.confirm.ApproveWithPasskey(ctx, w.user, nil, first.Confirmation.ID, assertFor(t, w.confirm, w.user, first.Confirmation.ID, auth, cred)))
	if a.Status != pb.StatusAuthorized {
		t.Fatalf("approved with the passkey: %+v", a)
	}

	// Per user: 5 more wrong codes, on other confirmations, make 10 in the
	// window; then every code is refused for a while, the right one too.
	for i := range 5 {
		if err := try(waiting().Confirmation.ID, wrongCodeFor(secret, w, 100+i)); pb.ErrorCode(err) != pb.ErrTOTPInvalid {
			t.Fatalf("wrong code on another confirmation: %v", err)
		}
	}
	next := waiting()
	err := try(next.Confirmation.ID, stepup.TOTPCode(secret, w.clock.Now()))
	var pe *pb.Error
	if pb.ErrorCode(err) != pb.ErrRateLimited || !asError(err, &pe) || pe.RetryAfter <= 0 || pe.RetryAfter > confirm.CodeFailureWindow {
		t.Fatalf("the 11th code within the window: %v", err)
	}
	if r := w.confirm.VerifyTOTP(ctx, w.user, nil, "000000"); pb.ErrorCode(r.Err) != pb.ErrRateLimited {
		t.Fatalf("enrolment codes are limited too: %v", r.Err)
	}
	w.clock.Advance(confirm.CodeFailureWindow)
	code := stepup.TOTPCode(secret, w.clock.Now())
	if p := must[*pb.Payment](t, w.confirm.ApproveWithTOTP(ctx, w.user, nil, waiting().Confirmation.ID, code)); p.Status != pb.StatusAuthorized {
		t.Fatalf("after the window: %+v", p)
	}
	// The same code, still current, does not approve another payment.
	if r := w.confirm.ApproveWithTOTP(ctx, w.user, nil, waiting().Confirmation.ID, code); pb.ErrorCode(r.Err) != pb.ErrTOTPInvalid {
		t.Fatalf("a code used twice: %v", r.Err)
	}
	w.verify(t)
}
