package mandates

import (
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestMessageExplainsEveryCode: every decline a mandate gives is explained
// in the mandate's own terms, not by its bare code.
func TestMessageExplainsEveryCode(t *testing.T) {
	m := &pb.Mandate{Currency: "USD", MaxAmount: 3000, ConfirmAbove: 1000, MaxPayments: 3,
		Budget: pb.Budget{Amount: 10_000, Period: pb.PeriodDay}}
	p := &pb.Payment{Amount: 2000, Currency: "USD"}
	for _, code := range []pb.Code{pb.DeclineMandateNotForAgent, pb.DeclineMandateRevoked, pb.DeclineMandateExpired,
		pb.DeclineMandateNotYetValid, pb.DeclineMandateCurrencyMismatch, pb.DeclineMandateAmountExceeded,
		pb.DeclineMandateBudgetExhausted, pb.DeclineMandateMerchant, pb.DeclineMandateSchedule,
		pb.DeclineMandateMaxPayments, pb.DeclineMandateCondition} {
		if msg := NewPolicy().Message(code, m, p, time.Now()); msg == "" || msg == string(code) {
			t.Errorf("%s is explained as %q", code, msg)
		}
	}
}

// TestConditionsCompiledOnce: a mandate's condition is compiled once and
// kept by its ID; one that does not compile is an error, not kept.
func TestConditionsCompiledOnce(t *testing.T) {
	var ps programs
	m := &pb.Mandate{ID: "mdt_1", Condition: "payment.amount < 500"}
	a, err := ps.get(m)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := ps.get(m); err != nil || b != a {
		t.Fatalf("compiled again: %p %p %v", a, b, err)
	}
	if _, err := ps.get(&pb.Mandate{ID: "mdt_2", Condition: "payment.amount <"}); err == nil {
		t.Fatal("a condition that does not compile was accepted")
	}
	if len(ps.m) != 1 {
		t.Fatalf("%d programs kept, want 1", len(ps.m))
	}
}
