package service_test

import (
	"context"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/stepup"
)

// twin returns a second service on e's PostgreSQL database, as a second
// process of the same deployment would run: its own store connection,
// ledger writer and caches, the same keys and clock. Tests of what several
// processes must agree on are skipped without PostgreSQL.
func twin(t *testing.T, e *env) *env {
	t.Helper()
	if e.db == "" {
		t.Skip("a second process needs a shared store: run with PAYBOUND_TEST_STORE=postgres")
	}
	ctx := context.Background()
	st, err := postgres.Open(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ledger.New(ctx, ledger.Config{Store: st, Clock: e.clock, PanicOnInvariant: true})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Store, cfg.Ledger, cfg.Mandates = st, w, mandates.NewPolicy()
	thresholds := e.cfg.Risk.(*riskctl.Control).Thresholds()
	cfg.Risk = riskWith(&cfg, &thresholds)
	svc, err := service.New(cfg)
	if err != nil {
		w.Close()
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); w.Close(); st.Close() })
	other := &env{svc: svc, st: st, clock: e.clock, feeBP: e.feeBP, cfg: cfg, db: e.db, logKey: e.logKey}
	other.confirm = confirmOf(t, other)
	other.mandates = mandatesOf(other)
	return other
}

func payOn(svc *service.Service, agent pb.Principal, mandate, merchant string, amount int64, capture pb.CaptureMethod) (*pb.Payment, error) {
	r := svc.CreatePayment(context.Background(), agent, nil, service.CreatePaymentParams{Amount: amount, Currency: "CNY",
		MerchantID: merchant, MandateID: mandate, CaptureMethod: capture})
	p, _ := r.Value.(*pb.Payment)
	return p, r.Err
}

// TestSharedRevocationHolds: once a revocation through one process is
// acknowledged, no process pays under the mandate, though another had it
// cached as valid.
func TestSharedRevocationHolds(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	bw := twin(t, w.env)
	b := bw.svc
	id := w.grant(t, pb.Mandate{})
	if p, err := payOn(b, w.agent, id, w.cafe.ID, 100, pb.CaptureAutomatic); err != nil || p.Status != pb.StatusCaptured {
		t.Fatalf("before the revocation, through B: %+v %v", p, err)
	}
	first := must[*pb.Mandate](t, w.mandates.Revoke(context.Background(), w.user, nil, id))
	w.clock.Advance(time.Minute)
	// Revoked once: B, whose cache holds it unrevoked, finds it revoked.
	if again := must[*pb.Mandate](t, bw.mandates.Revoke(context.Background(), w.user, nil, id)); !again.RevokedAt.Equal(*first.RevokedAt) {
		t.Fatalf("revoked again through B at %v; first at %v", again.RevokedAt, first.RevokedAt)
	}
	p, err := payOn(b, w.agent, id, w.cafe.ID, 100, pb.CaptureAutomatic)
	if p == nil || p.Status != pb.StatusDeclined || p.DeclineCode != pb.DeclineMandateRevoked || pb.ErrorCode(err) != pb.DeclineMandateRevoked {
		t.Fatalf("after the revocation through A, through B: %+v %v", p, err)
	}
	if v, _ := w.mandates.Mandate(context.Background(), w.user, id); v.PaymentsCount != 1 || v.RemainingBudget != 10_000-100 {
		t.Fatalf("the mandate's usage: %+v", v)
	}
	// Nor is any other decision made on it there: not a decline for another
	// limit, nor a confirmation asked of the user.
	other := w.grant(t, pb.Mandate{MaxAmount: 3000, ConfirmAbove: 1000})
	if p, err := payOn(b, w.agent, other, w.cafe.ID, 100, pb.CaptureAutomatic); err != nil || p.Status != pb.StatusCaptured {
		t.Fatalf("B caches the second mandate: %+v %v", p, err)
	}
	must[*pb.Mandate](t, w.mandates.Revoke(context.Background(), w.user, nil, other))
	for _, amount := range []int64{5000, 2000} { // above max_amount; above confirm_above
		if p, err := payOn(b, w.agent, other, w.cafe.ID, amount, pb.CaptureAutomatic); p == nil || p.DeclineCode != pb.DeclineMandateRevoked {
			t.Fatalf("%d under the mandate revoked through A, through B: %+v %v", amount, p, err)
		}
	}
	w.verify(t)
}

// TestSharedBudgetGivenBack: budget given back through one process (a
// cancel) can be spent through another, whose cached usage said the budget
// was exhausted.
func TestSharedBudgetGivenBack(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	b := twin(t, w.env).svc
	id := w.grant(t, pb.Mandate{MaxAmount: 1000, Budget: pb.Budget{Amount: 1000, Period: pb.PeriodTotal}})
	if p, err := payOn(w.svc, w.agent, id, w.cafe.ID, 500, pb.CaptureAutomatic); err != nil || p.Status != pb.StatusCaptured {
		t.Fatalf("500 through A: %+v %v", p, err)
	}
	held, err := payOn(b, w.agent, id, w.cafe.ID, 500, pb.CaptureManual)
	if err != nil || held.Status != pb.StatusAuthorized {
		t.Fatalf("500 through B: %+v %v", held, err)
	}
	// A learns that the budget is spent (its own view said 500 of 1000).
	if p, err := payOn(w.svc, w.agent, id, w.cafe.ID, 100, pb.CaptureAutomatic); p == nil || p.DeclineCode != pb.DeclineMandateBudgetExhausted {
		t.Fatalf("100 over the budget through A: %+v %v", p, err)
	}
	must[*pb.Payment](t, b.Cancel(context.Background(), w.cafe, nil, held.ID))
	p, err := payOn(w.svc, w.agent, id, w.cafe.ID, 500, pb.CaptureAutomatic)
	if err != nil || p.Status != pb.StatusCaptured {
		t.Fatalf("the 500 given back through B, spent through A: %+v %v", p, err)
	}
	if v, _ := w.mandates.Mandate(context.Background(), w.user, id); v.RemainingBudget != 0 {
		t.Fatalf("the mandate's usage: %+v", v)
	}
	w.verify(t)
}

// TestSharedFundsBeforeConfirmation: a payment that must wait for the
// user is not declined for funds that another process put in the wallet.
func TestSharedFundsBeforeConfirmation(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t) // the wallet holds 1,000.00 CNY, as A has cached
	b := twin(t, w.env).svc
	must[*pb.Topup](t, b.Topup(context.Background(), w.user, nil, 400_000, "CNY"))
	// No mandate: the payment waits for the user's confirmation.
	p, err := payOn(w.svc, w.agent, "", w.cafe.ID, 300_000, pb.CaptureAutomatic)
	if err != nil || p.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("3,000.00 of 5,000.00 through A: %+v %v", p, err)
	}
	w.verify(t)
}

// TestApprovalUnderRevokedMandate: a payment that waited for the user
// under a mandate that was revoked (or expired) meanwhile is declined at
// approval: the user's approval answers for its amount, not for a mandate
// that no longer carries a budget. Nothing is held and the budget is
// untouched. With PostgreSQL the revocation goes through another process.
func TestApprovalUnderRevokedMandate(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	ctx := context.Background()
	revoker := w.mandates
	if w.db != "" {
		revoker = twin(t, w.env).mandates
	}
	id := w.grant(t, pb.Mandate{MaxAmount: 3000, ConfirmAbove: 1000, Budget: pb.Budget{Amount: 5000, Period: pb.PeriodTotal}})
	p, err := w.pay(w.agent, id, w.cafe.ID, 2500, "CNY")
	if err != nil || p.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("above confirm_above: %+v %v", p, err)
	}
	e := must[*confirm.TOTPEnrolment](t, w.confirm.EnrollTOTP(ctx, w.user, nil))
	secret, _ := stepup.DecodeTOTPSecret(e.Secret)
	must[*confirm.TOTPEnrolment](t, w.confirm.VerifyTOTP(ctx, w.user, nil, stepup.TOTPCode(secret, w.clock.Now())))
	must[*pb.Mandate](t, revoker.Revoke(ctx, w.user, nil, id))
	w.clock.Advance(stepup.TOTPStep)
	before := w.available(t, w.user, "CNY")
	r := w.confirm.ApproveWithTOTP(ctx, w.user, nil, p.Confirmation.ID, stepup.TOTPCode(secret, w.clock.Now()))
	a, _ := r.Value.(*pb.Payment)
	if a == nil || a.Status != pb.StatusDeclined || a.DeclineCode != pb.DeclineMandateRevoked || pb.ErrorCode(r.Err) != pb.DeclineMandateRevoked {
		t.Fatalf("approved under a revoked mandate: %+v %v", a, r.Err)
	}
	if got := w.available(t, w.user, "CNY"); got != before {
		t.Fatalf("available %d, was %d: something was held", got, before)
	}
	if v, _ := w.mandates.Mandate(ctx, w.user, id); v.RemainingBudget != 5000 || v.PaymentsCount != 0 {
		t.Fatalf("the revoked mandate's usage: %+v", v)
	}
	if got, _ := w.svc.Payment(ctx, w.user, p.ID); got.Status != pb.StatusDeclined {
		t.Fatalf("stored payment: %+v", got)
	}
	w.verify(t)
}
