package service_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/risk"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/stepup"
)

// mandatesOf is the mandates capability over e's core, store and clock,
// as Main composes it (e's core runs with the policy newEnv gave it): these
// tests follow mandates through real payments.
func mandatesOf(e *env) *mandates.Service {
	return mandates.New(e.svc, e.st, mandates.Config{Clock: e.clock})
}

type mandateWorld struct {
	*env
	user, agent, other pb.Principal
	cafe, books        pb.Principal
}

func newMandateWorld(t testing.TB) *mandateWorld {
	// The checks here decline one attempt after another, and pay in
	// concurrent bursts, which risk control would rightly stop (its own
	// tests are in risk_test.go and cmd/paybound/risk_e2e_test.go).
	e := newEnv(t, t.TempDir(), 0, func(c *service.Config) {
		r := risk.Defaults()
		r.DeclineBurst, r.PerMinute, r.PerHour, r.PerDay = 1e9, 1e9, 1e9, 1e9
		c.Risk = riskWith(c, &r)
	})
	ctx := context.Background()
	w := &mandateWorld{env: e, user: e.user(t, 100_000, "CNY")}
	for _, p := range []*pb.Principal{&w.agent, &w.other} {
		a := must[*service.NewAgent](t, e.svc.CreateAgent(ctx, w.user, nil, "agent", nil))
		*p = pb.Principal{Role: pb.RoleAgent, ID: a.ID, UserID: w.user.ID}
	}
	c := must[*service.NewMerchant](t, e.svc.CreateMerchant(ctx, operator, nil, "cafe", "food_and_drink"))
	b := must[*service.NewMerchant](t, e.svc.CreateMerchant(ctx, operator, nil, "books", "books"))
	w.cafe, w.books = pb.Principal{Role: pb.RoleMerchant, ID: c.ID}, pb.Principal{Role: pb.RoleMerchant, ID: b.ID}
	return w
}

func (w *mandateWorld) grant(t testing.TB, m pb.Mandate) string {
	t.Helper()
	m.AgentID = w.agent.ID
	if m.Description == "" {
		m.Description = "coffee for me"
	}
	if m.Currency == "" {
		m.Currency = "CNY"
	}
	if m.MaxAmount == 0 {
		m.MaxAmount = 3000
	}
	if m.Budget.Amount == 0 {
		m.Budget = pb.Budget{Amount: 10_000, Period: pb.PeriodDay}
	}
	v := must[*mandates.View](t, w.mandates.Create(context.Background(), w.user, nil, m, &m.RequireSignature))
	return v.ID
}

func (w *mandateWorld) pay(agent pb.Principal, mandate, merchant string, amount int64, currency string) (*pb.Payment, error) {
	r := w.svc.CreatePayment(context.Background(), agent, nil, service.CreatePaymentParams{Amount: amount, Currency: currency,
		MerchantID: merchant, MandateID: mandate, CaptureMethod: pb.CaptureManual})
	p, _ := r.Value.(*pb.Payment)
	return p, r.Err
}

// TestMandateDeclines: every mandate check refuses with its code, and the
// declined payment is recorded with it.
func TestMandateDeclines(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	ctx := context.Background()
	exp := w.clock.Now().Add(time.Hour)
	ok := w.grant(t, pb.Mandate{Categories: []string{"food_and_drink"}, MaxPayments: 3, ExpiresAt: &exp})
	revoked := w.grant(t, pb.Mandate{})
	must[*pb.Mandate](t, w.mandates.Revoke(ctx, w.user, nil, revoked))
	later := w.grant(t, pb.Mandate{ValidFrom: w.clock.Now().Add(time.Hour)})
	night := w.grant(t, pb.Mandate{Schedule: &pb.Schedule{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"},
		Start: "02:00", End: "03:00", TimeZone: "UTC"}}) // the test clock is 09:00 UTC
	cond := w.grant(t, pb.Mandate{Condition: `payment.amount < 500`})
	confirm := w.grant(t, pb.Mandate{ConfirmAbove: 1000})
	for _, c := range []struct {
		name     string
		agent    pb.Principal
		mandate  string
		merchant string
		amount   int64
		currency string
		want     pb.Code
	}{
		{"inside", w.agent, ok, w.cafe.ID, 1000, "CNY", ""},
		{"unknown mandate", w.agent, pb.NewID(pb.PrefixMandate, time.Now()), w.cafe.ID, 100, "CNY", pb.ErrMandateNotFound},
		{"other agent", w.other, ok, w.cafe.ID, 100, "CNY", pb.DeclineMandateNotForAgent},
		{"revoked", w.agent, revoked, w.cafe.ID, 100, "CNY", pb.DeclineMandateRevoked},
		{"not yet valid", w.agent, later, w.cafe.ID, 100, "CNY", pb.DeclineMandateNotYetValid},
		{"currency", w.agent, ok, w.cafe.ID, 100, "USD", pb.DeclineMandateCurrencyMismatch},
		{"amount", w.agent, ok, w.cafe.ID, 3001, "CNY", pb.DeclineMandateAmountExceeded},
		{"merchant", w.agent, ok, w.books.ID, 100, "CNY", pb.DeclineMandateMerchant},
		{"schedule", w.agent, night, w.cafe.ID, 100, "CNY", pb.DeclineMandateSchedule},
		{"condition", w.agent, cond, w.cafe.ID, 600, "CNY", pb.DeclineMandateCondition},
		{"condition holds", w.agent, cond, w.cafe.ID, 400, "CNY", ""},
		{"above confirm_above waits for the user", w.agent, confirm, w.cafe.ID, 1001, "CNY", ""},
		{"second inside", w.agent, ok, w.cafe.ID, 1000, "CNY", ""},
		{"third inside", w.agent, ok, w.cafe.ID, 1000, "CNY", ""},
		{"max payments", w.agent, ok, w.cafe.ID, 100, "CNY", pb.DeclineMandateMaxPayments},
	} {
		p, err := w.pay(c.agent, c.mandate, c.merchant, c.amount, c.currency)
		if pb.ErrorCode(err) != c.want {
			t.Fatalf("%s: %v; want %q", c.name, err, c.want)
		}
		if c.want != "" {
			got, gerr := w.svc.Payment(ctx, w.user, p.ID)
			if gerr != nil || got.Status != pb.StatusDeclined || got.DeclineCode != c.want {
				t.Fatalf("%s: recorded as %+v, %v", c.name, got, gerr)
			}
		}
	}
	// A schedule decline says when payments are allowed and what time it
	// is in the mandate's zone (2026-11-27 09:00 UTC is a Friday, 17:00 in
	// Shanghai).
	shanghai := w.grant(t, pb.Mandate{Schedule: &pb.Schedule{Days: []string{"sat", "sun"}, Start: "07:00", End: "10:00", TimeZone: "Asia/Shanghai"}})
	if _, err := w.pay(w.agent, shanghai, w.cafe.ID, 100, "CNY"); pb.ErrorCode(err) != pb.DeclineMandateSchedule ||
		!strings.Contains(err.Error(), "payments are allowed sat, sun 07:00-10:00 (Asia/Shanghai); it is fri 17:00 there") {
		t.Fatalf("schedule decline: %v", err)
	}
	if p, err := w.pay(w.agent, confirm, w.cafe.ID, 1001, "CNY"); err != nil || p.Status != pb.StatusRequiresConfirmation || p.Confirmation == nil {
		t.Fatalf("above confirm_above: %+v %v; want requires_confirmation", p, err)
	}
	if p, err := w.pay(w.agent, "", w.cafe.ID, 100, "CNY"); err != nil || p.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("an agent without a mandate: %+v %v; want requires_confirmation", p, err)
	}
	w.clock.Advance(time.Hour)
	if _, err := w.pay(w.agent, ok, w.cafe.ID, 100, "CNY"); pb.ErrorCode(err) != pb.DeclineMandateExpired {
		t.Fatalf("after expiry: %v", err)
	}
	v, err := w.mandates.Mandate(ctx, w.user, ok)
	if err != nil || v.PaymentsCount != 3 || v.RemainingBudget != 10_000-3000 {
		t.Fatalf("usage view: %+v %v", v, err)
	}
	w.verify(t)
}

// TestMandateBudgetConcurrent: 100 concurrent payments of 1.00 against a
// budget of 10.00 give exactly 10 payments.
func TestMandateBudgetConcurrent(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	id := w.grant(t, pb.Mandate{MaxAmount: 100, Budget: pb.Budget{Amount: 1000, Period: pb.PeriodTotal}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[pb.Code]int{}
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.pay(w.agent, id, w.cafe.ID, 100, "CNY")
			mu.Lock()
			codes[pb.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[""] != 10 || codes[pb.DeclineMandateBudgetExhausted] != 90 {
		t.Fatalf("outcomes %v; want 10 payments and 90 budget declines", codes)
	}
	if got := w.available(t, w.user, "CNY"); got != 100_000-1000 {
		t.Fatalf("wallet %d", got)
	}
	w.verify(t)
}

// TestMandateBudgetGivenBack: a canceled hold, the uncaptured part of a
// capture and a refund return to the budget; the payments still count.
func TestMandateBudgetGivenBack(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	ctx := context.Background()
	id := w.grant(t, pb.Mandate{MaxAmount: 1000, Budget: pb.Budget{Amount: 1000, Period: pb.PeriodWeek}})
	remaining := func() int64 {
		v, err := w.mandates.Mandate(ctx, w.user, id)
		if err != nil {
			t.Fatal(err)
		}
		return v.RemainingBudget
	}
	p, err := w.pay(w.agent, id, w.cafe.ID, 1000, "CNY")
	if err != nil || remaining() != 0 {
		t.Fatalf("reserve: %v, remaining %d", err, remaining())
	}
	must[*pb.Payment](t, w.svc.Cancel(ctx, w.agent, nil, p.ID))
	if remaining() != 1000 {
		t.Fatalf("after cancel: %d", remaining())
	}
	p, _ = w.pay(w.agent, id, w.cafe.ID, 800, "CNY")
	amt := int64(500)
	must[*pb.Payment](t, w.svc.Capture(ctx, w.cafe, nil, p.ID, &amt))
	if remaining() != 500 {
		t.Fatalf("after capturing 500 of 800: %d", remaining())
	}
	must[*pb.Refund](t, w.svc.Refund(ctx, w.cafe, nil, p.ID, new(int64(200)), ""))
	if remaining() != 700 {
		t.Fatalf("after refunding 200: %d", remaining())
	}
	h, _ := w.pay(w.agent, id, w.cafe.ID, 700, "CNY")
	w.clock.Advance(pb.DefaultAuthorizationTTL)
	if _, err := w.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.svc.Payment(ctx, w.user, h.ID); got.Status != pb.StatusExpired {
		t.Fatalf("hold not expired: %s", got.Status)
	}
	m, _ := w.st.Mandate(ctx, id)
	u, err := w.st.MandateUsage(ctx, id, m.PeriodKey(h.CreatedAt))
	if err != nil || u.Spent != 300 {
		t.Fatalf("the week's usage after the expiry: %+v %v; want 300 (500 captured less 200 refunded)", u, err)
	}
	w.verify(t)
}

// TestApprovedMandatePaymentUsesTheBudget: a payment above confirm_above
// waits; once the user approves it, it is held and counts against the
// mandate's budget like any other.
func TestApprovedMandatePaymentUsesTheBudget(t *testing.T) {
	t.Parallel()
	w := newMandateWorld(t)
	ctx := context.Background()
	id := w.grant(t, pb.Mandate{MaxAmount: 3000, ConfirmAbove: 1000, Budget: pb.Budget{Amount: 5000, Period: pb.PeriodTotal}})
	p, err := w.pay(w.agent, id, w.cafe.ID, 2500, "CNY")
	if err != nil || p.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("above confirm_above: %+v %v", p, err)
	}
	if v, _ := w.mandates.Mandate(ctx, w.user, id); v.RemainingBudget != 5000 {
		t.Fatalf("a waiting payment reserved budget: %d", v.RemainingBudget)
	}
	e := must[*confirm.TOTPEnrolment](t, w.confirm.EnrollTOTP(ctx, w.user, nil))
	secret, _ := stepup.DecodeTOTPSecret(e.Secret)
	must[*confirm.TOTPEnrolment](t, w.confirm.VerifyTOTP(ctx, w.user, nil, stepup.TOTPCode(secret, w.clock.Now())))
	w.clock.Advance(stepup.TOTPStep)
	a := must[*pb.Payment](t, w.confirm.ApproveWithTOTP(ctx, w.user, nil, p.Confirmation.ID, stepup.TOTPCode(secret, w.clock.Now())))
	if a.Status != pb.StatusAuthorized {
		t.Fatalf("approved: %+v", a)
	}
	if v, _ := w.mandates.Mandate(ctx, w.user, id); v.RemainingBudget != 2500 || v.PaymentsCount != 1 {
		t.Fatalf("after approval: %+v", v)
	}
	w.verify(t)
}
