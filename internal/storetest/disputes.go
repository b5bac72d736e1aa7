package storetest

import (
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func dispute(id, payment, payer, merchant string, created time.Time) pb.Dispute {
	return pb.Dispute{ID: id, Object: "dispute", PaymentID: payment, PayerID: payer, MerchantID: merchant, Status: pb.DisputeOpen,
		Reason: pb.ReasonNotAsIntended, Details: "not what I asked for", Amount: 1000, Currency: "CNY",
		Proposal:  pb.Proposal{Attribution: pb.AttributionUserIntentUnclear, Check: "mandate", Explanation: "within the mandate", Evidence: []int64{3, 4}},
		CreatedAt: sec(created)}
}

func testDisputes(t *testing.T, s pb.Store) {
	ctx := t.Context()
	a := dispute("dsp_1", "pay_a", "usr_a", "mch_a", t0)
	b := dispute("dsp_2", "pay_a", "usr_a", "mch_a", t0.Add(time.Second))
	c := dispute("dsp_3", "pay_c", "usr_c", "mch_a", t0.Add(2*time.Second))
	commit(t, s, &pb.Batch{DisputePart: pb.DisputePart{Disputes: []pb.Dispute{a, b}}})
	commit(t, s, &pb.Batch{DisputePart: pb.DisputePart{Disputes: []pb.Dispute{c}}})
	got, err := s.Dispute(ctx, "dsp_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "Dispute", *got, a)
	_, err = s.Dispute(ctx, "dsp_none")
	wantNotFound(t, "a missing dispute", err)

	a.Status = pb.DisputeResolved
	a.Resolution = &pb.Resolution{Outcome: pb.OutcomeRefundFull, Amount: 1000, LiableParty: pb.LiableMerchant, RefundID: "re_1", ResolvedAt: sec(t0.Add(time.Hour))}
	commit(t, s, &pb.Batch{DisputePart: pb.DisputePart{Disputes: []pb.Dispute{a}}})
	got, _ = s.Dispute(ctx, "dsp_1")
	check(t, "Dispute after resolving", *got, a)

	ps, err := s.PaymentDisputes(ctx, "pay_a")
	if err != nil || len(ps) != 2 || ps[0].ID != "dsp_1" || ps[1].ID != "dsp_2" {
		t.Fatalf("PaymentDisputes = %v, %v", ps, err)
	}
	for _, tc := range []struct {
		f    pb.DisputeFilter
		want []string
		more bool
	}{
		{pb.DisputeFilter{}, []string{"dsp_3", "dsp_2", "dsp_1"}, false},
		{pb.DisputeFilter{PayerID: "usr_a"}, []string{"dsp_2", "dsp_1"}, false},
		{pb.DisputeFilter{MerchantID: "mch_a", Status: pb.DisputeOpen}, []string{"dsp_3", "dsp_2"}, false},
		{pb.DisputeFilter{Limit: 1}, []string{"dsp_3"}, true},
		{pb.DisputeFilter{StartingAfter: "dsp_3", Limit: 1}, []string{"dsp_2"}, true},
		{pb.DisputeFilter{PayerID: "usr_none"}, []string{}, false},
	} {
		ds, more, err := s.ListDisputes(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
			t.Errorf("ListDisputes(%+v) = %v, want %v", tc.f, ids, tc.want)
		}
		if more != tc.more {
			t.Errorf("ListDisputes(%+v) has_more = %v, want %v", tc.f, more, tc.more)
		}
	}
}
