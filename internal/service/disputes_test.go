package service_test

import (
	"context"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/stepup"
)

// disputesOf is the disputes capability over e's core, log and store, as Main
// composes it: these tests follow a dispute through the payments it is
// about.
func disputesOf(e *env) *disputes.Service { return disputes.New(e.svc, logOf(e), e.st) }

// capture captures p in full as its merchant.
func (w *mandateWorld) capture(t *testing.T, p *pb.Payment) *pb.Payment {
	t.Helper()
	m := pb.Principal{Role: pb.RoleMerchant, ID: p.MerchantID}
	return must[*pb.Payment](t, w.svc.Capture(context.Background(), m, nil, p.ID, nil))
}

func (w *mandateWorld) dispute(t *testing.T, p *pb.Payment, reason pb.DisputeReason) *pb.Dispute {
	t.Helper()
	return must[*pb.Dispute](t, disputesOf(w.env).Open(context.Background(), w.user, nil, p.ID, reason, "this is not what I wanted"))
}

// TestDisputeAttributions builds each scenario the issue names and checks
// the attribution the server proposes, the check it names, and that its
// evidence is the payment's log entries.
func TestDisputeAttributions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newMandateWorld(t)
	mdt := w.grant(t, pb.Mandate{MaxAmount: 3000, ConfirmAbove: 2000})

	// Within the mandate as written: the user's intent was unclear.
	p1, err := w.pay(w.agent, mdt, w.cafe.ID, 1500, "CNY")
	if err != nil {
		t.Fatal(err)
	}
	d1 := w.dispute(t, w.capture(t, p1), pb.ReasonNotAsIntended)
	if d1.Proposal.Attribution != pb.AttributionUserIntentUnclear || d1.Proposal.Check != "mandate" ||
		!strings.Contains(d1.Proposal.Explanation, mdt) || len(d1.Proposal.Evidence) != 3 {
		t.Fatalf("within the mandate: %+v", d1.Proposal)
	}
	if d1.Amount != 1500 || d1.Status != pb.DisputeOpen || d1.PayerID != w.user.ID || d1.AgentID != pb.OptString(w.agent.ID) {
		t.Fatalf("dispute: %+v", d1)
	}

	// Above confirm_above, let through by the user's confirmation: the
	// agent was out of its mandate's scope.
	p2, err := w.pay(w.agent, mdt, w.cafe.ID, 2500, "CNY")
	if err != nil || p2.Status != pb.StatusRequiresConfirmation {
		t.Fatalf("above confirm_above: %v %+v", err, p2)
	}
	en := must[*confirm.TOTPEnrolment](t, w.confirm.EnrollTOTP(ctx, w.user, nil))
	secret, _ := stepup.DecodeTOTPSecret(en.Secret)
	must[*confirm.TOTPEnrolment](t, w.confirm.VerifyTOTP(ctx, w.user, nil, stepup.TOTPCode(secret, w.clock.Now())))
	w.clock.Advance(stepup.TOTPStep)
	must[*pb.Payment](t, w.confirm.ApproveWithTOTP(ctx, w.user, nil, p2.Confirmation.ID, stepup.TOTPCode(secret, w.clock.Now())))
	d2 := w.dispute(t, w.capture(t, p2), pb.ReasonNotAsIntended)
	if d2.Proposal.Attribution != pb.AttributionAgentOutOfScope || d2.Proposal.Check != "user_confirmation" ||
		!strings.Contains(d2.Proposal.Explanation, "confirm_above") || !strings.Contains(d2.Proposal.Explanation, "totp") {
		t.Fatalf("let through by confirmation: %+v", d2.Proposal)
	}

	// A bearer-key agent payment the user calls unauthorized.
	p3, err := w.pay(w.agent, mdt, w.cafe.ID, 100, "CNY")
	if err != nil {
		t.Fatal(err)
	}
	d3 := w.dispute(t, w.capture(t, p3), pb.ReasonUnauthorized)
	if d3.Proposal.Attribution != pb.AttributionAgentOutOfScope || d3.Proposal.Check != "bearer_key" {
		t.Fatalf("unauthorized bearer payment: %+v", d3.Proposal)
	}

	// The user's own payment: nothing at fault.
	p4 := must[*pb.Payment](t, w.svc.CreatePayment(ctx, w.user, nil, service.CreatePaymentParams{Amount: 700, Currency: "CNY",
		MerchantID: w.books.ID, CaptureMethod: pb.CaptureAutomatic}))
	d4 := w.dispute(t, p4, pb.ReasonMerchantError)
	if d4.Proposal.Attribution != pb.AttributionNone || d4.Proposal.Check != "user" {
		t.Fatalf("the user's own payment: %+v", d4.Proposal)
	}

	// A duplicate: the twin is named.
	p5 := must[*pb.Payment](t, w.svc.CreatePayment(ctx, w.user, nil, service.CreatePaymentParams{Amount: 700, Currency: "CNY",
		MerchantID: w.books.ID, CaptureMethod: pb.CaptureAutomatic}))
	d5 := w.dispute(t, p5, pb.ReasonDuplicate)
	if !strings.Contains(d5.Proposal.Explanation, p4.ID) {
		t.Fatalf("duplicate: %+v", d5.Proposal)
	}

	// Bad input changes nothing.
	for _, c := range []struct {
		caller pb.Principal
		id     string
		reason pb.DisputeReason
		code   pb.Code
	}{
		{w.user, p1.ID, "fraud", pb.ErrParameterInvalid},
		{w.user, p1.ID, pb.ReasonOther, pb.ErrDisputeState}, // already open
		{w.agent, p1.ID, pb.ReasonOther, pb.ErrForbidden},
		{w.cafe, p1.ID, pb.ReasonOther, pb.ErrForbidden},
		{w.user, "pay_nonexistent", pb.ReasonOther, pb.ErrNotFound},
	} {
		if err := disputesOf(w.env).Open(ctx, c.caller, nil, c.id, c.reason, "").Err; pb.ErrorCode(err) != c.code {
			t.Errorf("Open(%s, %s, %s) = %v, want %s", c.caller.Role, c.id, c.reason, err, c.code)
		}
	}
	p6, _ := w.pay(w.agent, mdt, w.cafe.ID, 100, "CNY") // authorized, not captured
	if err := disputesOf(w.env).Open(ctx, w.user, nil, p6.ID, pb.ReasonOther, "").Err; pb.ErrorCode(err) != pb.ErrPaymentState {
		t.Errorf("a dispute of an uncaptured payment: %v", err)
	}
	w.verify(t)
}

// TestDisputeResolutions resolves disputes each way and checks the money
// and the log: a merchant refund, a compensation from the platform's fund,
// a rejection; and refuses a second resolution.
func TestDisputeResolutions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newMandateWorld(t)
	mdt := w.grant(t, pb.Mandate{MaxAmount: 3000})
	pay := func(amount int64) *pb.Payment {
		p, err := w.pay(w.agent, mdt, w.cafe.ID, amount, "CNY")
		if err != nil {
			t.Fatal(err)
		}
		return w.capture(t, p)
	}
	resolve := func(d *pb.Dispute, in disputes.ResolveParams) (*pb.Dispute, error) {
		r := disputesOf(w.env).Resolve(ctx, operator, nil, d.ID, in)
		v, _ := r.Value.(*pb.Dispute)
		return v, r.Err
	}
	start := w.available(t, w.user, "CNY")

	// The merchant refunds part.
	d := w.dispute(t, pay(1000), pb.ReasonMerchantError)
	amt := int64(400)
	for _, bad := range []struct {
		in   disputes.ResolveParams
		code pb.Code
	}{
		{disputes.ResolveParams{Outcome: "refund_some", LiableParty: pb.LiableMerchant}, pb.ErrParameterInvalid},
		{disputes.ResolveParams{Outcome: pb.OutcomeRefundPartial, LiableParty: pb.LiableMerchant}, pb.ErrParameterMissing},
		{disputes.ResolveParams{Outcome: pb.OutcomeRefundFull, Amount: &amt, LiableParty: pb.LiableMerchant}, pb.ErrParameterInvalid},
		{disputes.ResolveParams{Outcome: pb.OutcomeRefundFull, LiableParty: pb.LiableUser}, pb.ErrParameterInvalid},
		{disputes.ResolveParams{Outcome: pb.OutcomeRefundFull, LiableParty: "bank"}, pb.ErrParameterInvalid},
		{disputes.ResolveParams{Outcome: pb.OutcomeRefundPartial, Amount: ptr(int64(1001)), LiableParty: pb.LiableMerchant}, pb.ErrAmountTooLarge},
	} {
		if _, err := resolve(d, bad.in); pb.ErrorCode(err) != bad.code {
			t.Errorf("resolve %+v: %v, want %s", bad.in, err, bad.code)
		}
	}
	if err := disputesOf(w.env).Resolve(ctx, w.user, nil, d.ID, disputes.ResolveParams{Outcome: pb.OutcomeReject, LiableParty: pb.LiableUser}).Err; pb.ErrorCode(err) != pb.ErrForbidden {
		t.Errorf("a user resolving: %v", err)
	}
	r, err := resolve(d, disputes.ResolveParams{Outcome: pb.OutcomeRefundPartial, Amount: &amt, LiableParty: pb.LiableMerchant})
	if err != nil || r.Status != pb.DisputeResolved || r.Resolution.RefundID == "" || r.Resolution.Amount != 400 {
		t.Fatalf("merchant refund: %+v %v", r, err)
	}
	if p, _ := w.svc.Payment(ctx, w.user, d.PaymentID); p.AmountRefunded != 400 {
		t.Fatalf("payment after the dispute refund: %+v", p)
	}
	if _, err := resolve(d, disputes.ResolveParams{Outcome: pb.OutcomeReject, LiableParty: pb.LiableUser}); pb.ErrorCode(err) != pb.ErrDisputeState {
		t.Fatalf("second resolution: %v", err)
	}

	// The platform compensates for the agent's operator.
	d = w.dispute(t, pay(2000), pb.ReasonNotAsIntended)
	r, err = resolve(d, disputes.ResolveParams{Outcome: pb.OutcomeRefundFull, LiableParty: pb.LiableAgentOperator})
	if err != nil || r.Resolution.CompensationID == "" || r.Resolution.Amount != 2000 {
		t.Fatalf("compensation: %+v %v", r, err)
	}
	if p, _ := w.svc.Payment(ctx, w.user, d.PaymentID); p.AmountRefunded != 0 || p.Status != pb.StatusCaptured {
		t.Fatalf("a compensation is not a refund: %+v", p)
	}
	// But it stands in for one: nobody is paid back twice.
	if err := w.svc.Refund(ctx, w.cafe, nil, d.PaymentID, nil, "").Err; pb.ErrorCode(err) != pb.ErrPaymentState {
		t.Fatalf("a merchant refund after a full compensation: %v", err)
	}
	if err := disputesOf(w.env).Open(ctx, w.user, nil, d.PaymentID, pb.ReasonOther, "again").Err; pb.ErrorCode(err) != pb.ErrPaymentState {
		t.Fatalf("a second dispute after a full compensation: %v", err)
	}

	// A rejection moves nothing.
	d = w.dispute(t, pay(300), pb.ReasonOther)
	if r, err = resolve(d, disputes.ResolveParams{Outcome: pb.OutcomeReject, LiableParty: pb.LiableUser}); err != nil || r.Resolution.Amount != 0 {
		t.Fatalf("reject: %+v %v", r, err)
	}
	// Paid 1000+2000+300, got back 400 (refund) + 2000 (compensation).
	if got := w.available(t, w.user, "CNY"); got != start-3300+2400 {
		t.Fatalf("wallet %d, want %d", got, start-3300+2400)
	}
	// The trace holds the dispute and its resolution, chained.
	tr, err := logOf(w.env).PaymentTrace(ctx, w.user, d.PaymentID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range tr.Entries {
		types = append(types, strings.SplitN(strings.SplitN(e.Entry, `"type":"`, 2)[1], `"`, 2)[0])
	}
	if got := strings.Join(types, ","); got != "payment.created,payment.authorized,payment.captured,dispute.opened,dispute.resolved" {
		t.Fatalf("trace: %s", got)
	}
	list, _, err := disputesOf(w.env).List(ctx, w.cafe, pb.DisputeResolved, "", 10)
	if err != nil || len(list) != 3 {
		t.Fatalf("the merchant's resolved disputes: %d %v", len(list), err)
	}
	if _, err := disputesOf(w.env).Dispute(ctx, w.books, d.ID); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Fatalf("another merchant reads a dispute: %v", err)
	}
	w.verify(t)
	// Every entry written along the way is canonical JSON as written.
	es, err := w.st.LogEntries(ctx, 0, pb.MaxLogRead)
	if err != nil || len(es) < 15 {
		t.Fatalf("log: %d entries, %v", len(es), err)
	}
	for _, e := range es {
		if c, err := pb.Canonical(e.Body); err != nil || string(c) != string(e.Body) {
			t.Fatalf("entry %d is not canonical:\n%s\n%s", e.Index, e.Body, c)
		}
	}
}

func ptr[T any](v T) *T { return &v }
