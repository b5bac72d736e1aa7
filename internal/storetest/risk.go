package storetest

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// testPaymentRisk: a payment's risk assessment, input included, is stored
// with it and read back by every payment read; a payment not assessed has
// none; an update never changes the assessment, which is written once, at
// creation.
func testPaymentRisk(t *testing.T, s pb.Store) {
	ctx := t.Context()
	p1 := payment(pb.NewID(pb.PrefixPayment, t0), "usr_alice", "mch_cafe", "agt_butler", t0)
	p1.Risk = &pb.Risk{Decision: pb.RiskReview, Rule: "big_first_payment", Score: 65, Signals: []pb.RiskSignal{
		{Name: "new_merchant", Points: 25, Reason: `first payment to "Café" ☕`},
		{Name: "amount_spike", Points: 40, Reason: "10× the usual amount"},
	}, Input: json.RawMessage(`{"amount_minor":1000,"merchant":{"id":"mch_cafe","flags":[]},"note":"ünïcode ✓"}`)}
	p2 := payment(pb.NewID(pb.PrefixPayment, t0.Add(time.Millisecond)), "usr_alice", "mch_books", "", t0.Add(time.Millisecond))
	p3 := payment(pb.NewID(pb.PrefixPayment, t0.Add(2*time.Millisecond)), "usr_bob", "mch_cafe", "", t0.Add(2*time.Millisecond))
	p3.Risk = &pb.Risk{Decision: pb.RiskAllow, Signals: []pb.RiskSignal{}} // no input, no signals
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p1, p2, p3}}})

	read := func(what string, want ...pb.Payment) {
		t.Helper()
		for _, w := range want {
			got, err := s.Payment(ctx, w.ID)
			if err != nil {
				t.Fatalf("Payment(%s) %s: %v", w.ID, what, err)
			}
			checkPayment(t, "Payment("+w.ID+") "+what, got, w)
		}
		list, _, err := s.ListPayments(ctx, pb.PaymentFilter{})
		if err != nil {
			t.Fatalf("ListPayments %s: %v", what, err)
		}
		for _, got := range list {
			for _, w := range want {
				if got.ID == w.ID {
					checkPayment(t, "ListPayments' "+w.ID+" "+what, &got, w)
				}
			}
		}
	}
	read("after insert", p1, p2, p3)

	// p1 is captured carrying its risk, as the ledger writer updates a
	// payment; p3's update lacks it, and keeps the stored one all the same.
	p1.Status, p1.AmountCaptured, p1.AuthorizationExpiresAt = pb.StatusCaptured, p1.Amount, nil
	p2.Status = pb.StatusCanceled
	p3.Status = pb.StatusCanceled
	upd3 := p3
	upd3.Risk = nil
	b := &pb.Batch{PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p1, p2, upd3}}}
	commit(t, s, b)
	read("after update", p1, p2, p3)
}

// testRecentPayments: a payer's payments newest first (by ID, not by
// insertion), with their merchants' categories (empty for a merchant not
// stored), at most MaxRecentPayments of them.
func testRecentPayments(t *testing.T, s pb.Store) {
	ctx := t.Context()
	commit(t, s, &pb.Batch{
		PaymentPart: pb.PaymentPart{
			Merchants: []pb.Merchant{
				{ID: "mch_cafe", Name: "Café", Category: "food_and_drink", CreatedAt: t0},
				{ID: "mch_books", Name: "Books", Category: "books", CreatedAt: t0},
				{ID: "mch_plain", Name: "Plain", CreatedAt: t0},
			},
		},
	})
	merchants := []string{"mch_cafe", "mch_books", "mch_plain", "mch_gone"}
	categories := map[string]string{"mch_cafe": "food_and_drink", "mch_books": "books"}
	statuses := []pb.PaymentStatus{pb.StatusAuthorized, pb.StatusCaptured, pb.StatusDeclined, pb.StatusRefunded, pb.StatusRequiresConfirmation}
	var ps []pb.Payment
	for i := range 10 {
		at := t0.Add(time.Duration(i) * time.Second)
		payer := "usr_alice"
		if i%3 == 2 {
			payer = "usr_bob"
		}
		p := payment(pb.NewID(pb.PrefixPayment, at), payer, merchants[i%len(merchants)], "", at)
		p.Amount, p.Currency, p.Status = big+int64(i), []string{"CNY", "USD"}[i%2], statuses[i%len(statuses)]
		if i%2 == 0 {
			p.AgentID, p.MandateID = "agt_butler", pb.OptString("mdt_"+string(rune('a'+i)))
		}
		ps = append(ps, p)
	}
	// The newer half first, so that insertion order is not ID order.
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: slices.Clone(ps[5:])}})
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: slices.Clone(ps[:5])}})

	want := func(payer string, n int) []pb.RecentPayment {
		var out []pb.RecentPayment
		for i := len(ps) - 1; i >= 0 && len(out) < n; i-- {
			if p := ps[i]; p.PayerID == payer {
				out = append(out, pb.RecentPayment{ID: p.ID, MerchantID: p.MerchantID, Category: categories[p.MerchantID],
					AgentID: string(p.AgentID), MandateID: string(p.MandateID), Currency: p.Currency, Amount: p.Amount,
					Status: p.Status, CreatedAt: sec(p.CreatedAt)})
			}
		}
		return out
	}
	for _, tc := range []struct {
		payer string
		limit int
		want  []pb.RecentPayment
	}{
		{"usr_alice", 0, want("usr_alice", 10)},
		{"usr_alice", 3, want("usr_alice", 3)},
		{"usr_alice", 1, want("usr_alice", 1)},
		{"usr_bob", 100, want("usr_bob", 10)},
		{"usr_nobody", 10, nil},
	} {
		got, err := s.RecentPayments(ctx, tc.payer, tc.limit)
		if err != nil {
			t.Fatalf("RecentPayments(%s, %d): %v", tc.payer, tc.limit, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("RecentPayments(%s, %d) = %d payments, want %d", tc.payer, tc.limit, len(got), len(tc.want))
			continue
		}
		for i := range got {
			got[i].CreatedAt = sec(got[i].CreatedAt)
			check(t, "RecentPayments("+tc.payer+")["+tc.want[i].ID+"]", got[i], tc.want[i])
		}
	}

	// More than MaxRecentPayments: any limit <= 0 or above it gives that many.
	var many []pb.Payment
	for i := range pb.MaxRecentPayments + 3 {
		at := t0.Add(time.Hour + time.Duration(i)*time.Millisecond)
		many = append(many, payment(pb.NewID(pb.PrefixPayment, at), "usr_many", "mch_cafe", "", at))
	}
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: many}})
	for _, limit := range []int{0, -1, pb.MaxRecentPayments + 1, 1 << 30} {
		got, err := s.RecentPayments(ctx, "usr_many", limit)
		if err != nil {
			t.Fatalf("RecentPayments(usr_many, %d): %v", limit, err)
		}
		if len(got) != pb.MaxRecentPayments || got[0].ID != many[len(many)-1].ID || got[len(got)-1].ID != many[3].ID {
			t.Errorf("RecentPayments(usr_many, %d) = %d payments, want the newest %d", limit, len(got), pb.MaxRecentPayments)
		}
	}
}

// testPaidMerchant: only a payment that moved money counts, only the
// payer's own, and only among the payer's last MaxPaidMerchantScan.
func testPaidMerchant(t *testing.T, s pb.Store) {
	ctx := t.Context()
	var ps []pb.Payment
	add := func(payer, merchant string, status pb.PaymentStatus) {
		at := t0.Add(time.Duration(len(ps)) * time.Millisecond)
		p := payment(pb.NewID(pb.PrefixPayment, at), payer, merchant, "", at)
		p.Status = status
		ps = append(ps, p)
	}
	add("usr_alice", "mch_captured", pb.StatusCaptured)
	add("usr_alice", "mch_authorized", pb.StatusAuthorized)
	add("usr_alice", "mch_refunded", pb.StatusRefunded)
	add("usr_alice", "mch_declined", pb.StatusDeclined)
	add("usr_alice", "mch_declined", pb.StatusDeclined)
	add("usr_alice", "mch_canceled", pb.StatusCanceled)
	add("usr_alice", "mch_expired", pb.StatusExpired)
	add("usr_alice", "mch_unconfirmed", pb.StatusRequiresConfirmation)
	add("usr_alice", "mch_mixed", pb.StatusDeclined)
	add("usr_alice", "mch_mixed", pb.StatusCaptured)
	add("usr_bob", "mch_bobs", pb.StatusCaptured)
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: ps}})
	for _, tc := range []struct {
		payer, merchant string
		want            bool
	}{
		{"usr_alice", "mch_captured", true},
		{"usr_alice", "mch_authorized", true},
		{"usr_alice", "mch_refunded", true},
		{"usr_alice", "mch_mixed", true},
		{"usr_alice", "mch_declined", false},
		{"usr_alice", "mch_canceled", false},
		{"usr_alice", "mch_expired", false},
		{"usr_alice", "mch_unconfirmed", false},
		{"usr_alice", "mch_bobs", false}, // another payer's
		{"usr_alice", "mch_none", false},
		{"usr_bob", "mch_captured", false},
		{"usr_nobody", "mch_captured", false},
	} {
		got, err := s.PaidMerchant(ctx, tc.payer, tc.merchant)
		if err != nil {
			t.Fatalf("PaidMerchant(%s, %s): %v", tc.payer, tc.merchant, err)
		}
		if got != tc.want {
			t.Errorf("PaidMerchant(%s, %s) = %v, want %v", tc.payer, tc.merchant, got, tc.want)
		}
	}

	// usr_old paid mch_old, then made MaxPaidMerchantScan-1 other payments:
	// the payment is the last one scanned; one more pushes it out.
	paid := func(want bool) {
		t.Helper()
		if got, err := s.PaidMerchant(ctx, "usr_old", "mch_old"); err != nil || got != want {
			t.Errorf("PaidMerchant(usr_old, mch_old) with %d newer payments = %v, %v; want %v", len(ps)-1, got, err, want)
		}
	}
	ps = nil
	add("usr_old", "mch_old", pb.StatusCaptured)
	for range pb.MaxPaidMerchantScan - 1 {
		add("usr_old", "mch_new", pb.StatusCaptured)
	}
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: ps}})
	paid(true)
	add("usr_old", "mch_new", pb.StatusCaptured)
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: ps[len(ps)-1:]}})
	paid(false)
}

// testRiskRules: rules are listed by name, replaced whole by name, and
// deleted; deleting a missing rule is ErrNotFound.
func testRiskRules(t *testing.T, s pb.Store) {
	ctx := t.Context()
	list := func(what string, want ...pb.RiskRule) {
		t.Helper()
		got, err := s.RiskRules(ctx)
		if err != nil {
			t.Fatalf("RiskRules %s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("RiskRules %s = %+v, want %+v", what, got, want)
		}
		for i := range got {
			got[i].CreatedAt, want[i].CreatedAt = sec(got[i].CreatedAt), sec(want[i].CreatedAt)
			check(t, "RiskRules "+what+": "+want[i].Name, got[i], want[i])
		}
	}
	list("of an empty store")
	zeta := pb.RiskRule{Name: "zeta", Expression: `attempt.amount_minor > 100000`, Action: pb.RiskBlock, Priority: -5, CreatedAt: t0}
	alpha := pb.RiskRule{Name: "alpha", Expression: `"suspected_fraud" in merchant.flags`, Action: pb.RiskBlock, Priority: 1 << 40, CreatedAt: t0.Add(time.Second)}
	mid := pb.RiskRule{Name: "mid", Expression: `attempt.provenance == "untrusted" && score >= 30`, Action: pb.RiskReview, CreatedAt: t0.Add(2 * time.Second)}
	for _, r := range []pb.RiskRule{zeta, alpha, mid} {
		if err := s.PutRiskRule(ctx, r); err != nil {
			t.Fatalf("PutRiskRule(%s): %v", r.Name, err)
		}
	}
	list("after three puts", alpha, mid, zeta)

	mid.Expression, mid.Action, mid.Priority, mid.CreatedAt = `payer.payments_24h > 20`, pb.RiskAllow, 7, t0.Add(time.Hour)
	if err := s.PutRiskRule(ctx, mid); err != nil {
		t.Fatalf("PutRiskRule(mid) again: %v", err)
	}
	list("after replacing mid", alpha, mid, zeta)

	if err := s.DeleteRiskRule(ctx, "alpha"); err != nil {
		t.Fatalf("DeleteRiskRule(alpha): %v", err)
	}
	list("after deleting alpha", mid, zeta)
	wantNotFound(t, "DeleteRiskRule of a deleted rule", s.DeleteRiskRule(ctx, "alpha"))
	wantNotFound(t, "DeleteRiskRule of a rule never stored", s.DeleteRiskRule(ctx, "never"))
	list("after deleting missing rules", mid, zeta)
}

// testMerchantFlags: flags are listed by merchant, replaced whole, and
// removed by setting none.
func testMerchantFlags(t *testing.T, s pb.Store) {
	ctx := t.Context()
	list := func(what string, want ...pb.MerchantFlags) {
		t.Helper()
		got, err := s.AllMerchantFlags(ctx)
		if err != nil {
			t.Fatalf("AllMerchantFlags %s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("AllMerchantFlags %s = %+v, want %+v", what, got, want)
		}
		for i := range got {
			if got[i].Flags == nil {
				t.Errorf("AllMerchantFlags %s: %s has nil flags", what, got[i].MerchantID)
			}
			got[i].UpdatedAt, want[i].UpdatedAt = sec(got[i].UpdatedAt), sec(want[i].UpdatedAt)
			check(t, "AllMerchantFlags "+what+": "+want[i].MerchantID, got[i], want[i])
		}
	}
	set := func(f pb.MerchantFlags) {
		t.Helper()
		if err := s.SetMerchantFlags(ctx, f); err != nil {
			t.Fatalf("SetMerchantFlags(%s, %q): %v", f.MerchantID, f.Flags, err)
		}
	}
	list("of an empty store")
	b := pb.MerchantFlags{MerchantID: "mch_b", Flags: []string{"suspected_fraud"}, UpdatedAt: t0}
	a := pb.MerchantFlags{MerchantID: "mch_a", Flags: []string{"high_risk", "new_ünïcode", `quoted "flag"`}, UpdatedAt: t0.Add(time.Second)}
	c := pb.MerchantFlags{MerchantID: "mch_c", Flags: []string{"watch"}, UpdatedAt: t0}
	set(b)
	set(a)
	set(c)
	list("after three sets", a, b, c)

	a.Flags, a.UpdatedAt = []string{"watch"}, t0.Add(time.Hour)
	set(a)
	list("after replacing mch_a's", a, b, c)

	set(pb.MerchantFlags{MerchantID: "mch_b", UpdatedAt: t0.Add(time.Hour)})
	list("after clearing mch_b's", a, c)
	set(pb.MerchantFlags{MerchantID: "mch_b", Flags: []string{}, UpdatedAt: t0.Add(time.Hour)})
	set(pb.MerchantFlags{MerchantID: "mch_never", UpdatedAt: t0})
	list("after clearing unflagged merchants", a, c)
}

// testPayerActivity: a payer's payments from an instant on (to the
// millisecond), tallied by agent, mandate and payee without the declined
// ones; the agent's declines other than risk control's and other than a
// retry of the same payment; whether one paid the merchant; sums that stop
// at the largest integer; at most MaxActivityScan payments, the newest.
func testPayerActivity(t *testing.T, s pb.Store) {
	ctx := t.Context()
	since := t0.Add(10 * time.Second)
	var ps []pb.Payment
	add := func(at time.Time, payer, agent, mandate, merchant string, amount int64, status pb.PaymentStatus, decline pb.Code) {
		p := payment(pb.NewID(pb.PrefixPayment, at), payer, merchant, agent, at)
		p.MandateID, p.Amount, p.Status, p.DeclineCode = pb.OptString(mandate), amount, status, decline
		if status != pb.StatusAuthorized {
			p.AuthorizationExpiresAt = nil
		}
		if status == pb.StatusCaptured {
			p.AmountCaptured = amount
		}
		ps = append(ps, p)
	}
	after := func(n int) time.Time { return since.Add(time.Duration(n) * time.Second) }
	add(since.Add(-time.Millisecond), "usr_alice", "agt_a", "mdt_a", "mch_a", 100, pb.StatusCaptured, "") // before
	add(since, "usr_alice", "agt_a", "mdt_a", "mch_a", 200, pb.StatusCaptured, "")
	add(after(1), "usr_alice", "agt_a", "", "mch_b", 300, pb.StatusAuthorized, "")
	add(after(2), "usr_alice", "agt_a", "mdt_a", "mch_a", 400, pb.StatusDeclined, pb.DeclineInsufficientFunds) // the same again
	add(after(3), "usr_alice", "agt_a", "mdt_a", "mch_b", 500, pb.StatusDeclined, pb.DeclineMandateBudgetExhausted)
	add(after(4), "usr_alice", "agt_a", "mdt_a", "mch_a", 600, pb.StatusDeclined, pb.DeclineRiskBlocked)
	add(after(5), "usr_alice", "agt_a", "mdt_a", "mch_a", 700, pb.StatusDeclined, pb.DeclineInsufficientFunds)
	add(after(6), "usr_alice", "agt_b", "mdt_b", "mch_a", 800, pb.StatusCanceled, "")
	add(after(7), "usr_alice", "", "", "mch_a", 900, pb.StatusRequiresConfirmation, "")
	add(after(8), "usr_bob", "agt_x", "mdt_a", "mch_a", 1000, pb.StatusCaptured, "") // another payer's
	// Above MaxAmount, as no payment is: the sums still must not wrap.
	for i := range 3 {
		add(after(9).Add(time.Duration(i)*time.Millisecond), "usr_rich", "agt_r", "mdt_r", "mch_r", 1<<62, pb.StatusCaptured, "")
	}
	for i := range pb.MaxActivityScan + 2 {
		add(after(20).Add(time.Duration(i)*time.Millisecond), "usr_many", "agt_m", "", "mch_m", 1000, pb.StatusAuthorized, "")
	}
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Payments: ps}})

	floor := pb.IDFloor(pb.PrefixPayment, since)
	for _, tc := range []struct {
		name string
		q    pb.ActivityQuery
		want pb.Activity
	}{
		{"agent under a mandate", pb.ActivityQuery{PayerID: "usr_alice", SinceID: floor, AgentID: "agt_a", MandateID: "mdt_a", MerchantID: "mch_a", Amount: 400},
			pb.Activity{Agent: pb.ActivityTally{Count: 2, Sum: 500}, Mandate: pb.ActivityTally{Count: 1, Sum: 200},
				Payee: pb.ActivityTally{Count: 3, Sum: 1900}, Declines: 2, PaidMerchant: true, Scanned: 8}},
		{"the user", pb.ActivityQuery{PayerID: "usr_alice", SinceID: floor, MerchantID: "mch_b", Amount: 1},
			pb.Activity{Payee: pb.ActivityTally{Count: 1, Sum: 300}, PaidMerchant: true, Scanned: 8}},
		{"a millisecond later", pb.ActivityQuery{PayerID: "usr_alice", SinceID: pb.IDFloor(pb.PrefixPayment, since.Add(time.Millisecond)),
			AgentID: "agt_a", MandateID: "mdt_a", MerchantID: "mch_a", Amount: 400},
			pb.Activity{Agent: pb.ActivityTally{Count: 1, Sum: 300}, Payee: pb.ActivityTally{Count: 2, Sum: 1700}, Declines: 2, Scanned: 7}},
		{"nobody", pb.ActivityQuery{PayerID: "usr_nobody", SinceID: floor, AgentID: "agt_a", MerchantID: "mch_a"}, pb.Activity{}},
		{"sums stop", pb.ActivityQuery{PayerID: "usr_rich", SinceID: floor, AgentID: "agt_r", MandateID: "mdt_r", MerchantID: "mch_r"},
			pb.Activity{Agent: pb.ActivityTally{Count: 3, Sum: math.MaxInt64}, Mandate: pb.ActivityTally{Count: 3, Sum: math.MaxInt64},
				Payee: pb.ActivityTally{Count: 3, Sum: math.MaxInt64}, PaidMerchant: true, Scanned: 3}},
		{"at most MaxActivityScan", pb.ActivityQuery{PayerID: "usr_many", SinceID: floor, AgentID: "agt_m", MerchantID: "mch_m"},
			pb.Activity{Agent: pb.ActivityTally{Count: pb.MaxActivityScan, Sum: 1000 * pb.MaxActivityScan},
				Payee: pb.ActivityTally{Count: pb.MaxActivityScan, Sum: 1000 * pb.MaxActivityScan}, PaidMerchant: true, Scanned: pb.MaxActivityScan}},
	} {
		got, err := s.PayerActivity(ctx, tc.q)
		if err != nil {
			t.Fatalf("PayerActivity %s: %v", tc.name, err)
		}
		check(t, "PayerActivity "+tc.name, got, tc.want)
	}
}
