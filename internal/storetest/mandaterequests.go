package storetest

import (
	"errors"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func mandateRequest(id, user, agent string, created time.Time) pb.MandateRequest {
	yes := true
	exp := sec(created.Add(30 * 24 * time.Hour))
	return pb.MandateRequest{ID: id, Object: "mandate_request", UserID: user, AgentID: agent, Status: pb.MandateRequestPending,
		Reason: "to buy breakfast ü", RequireSignature: &yes,
		Terms: pb.Mandate{AgentID: agent, Description: "breakfast", Currency: "CNY", MaxAmount: 3000,
			Budget: pb.Budget{Amount: 15000, Period: pb.PeriodWeek}, MerchantIDs: []string{"mch_a"}, ExpiresAt: &exp,
			Schedule: &pb.Schedule{Days: []string{"mon"}, Start: "07:00", End: "10:00", TimeZone: "Asia/Shanghai"}},
		CreatedAt: sec(created), ExpiresAt: sec(created.Add(pb.MandateRequestLifetime)), Version: 1}
}

// testMandateRequests: requests are written whole and read back, listed
// per user and per agent newest first, by status, paged; a decision
// replaces the request; a shared store refuses a decision over a version
// that is not the stored one (two processes deciding one request).
func testMandateRequests(t *testing.T, s pb.Store) {
	ctx := t.Context()
	a := mandateRequest("mreq_1", "usr_a", "agt_a", t0)
	b := mandateRequest("mreq_2", "usr_a", "agt_b", t0.Add(time.Second))
	b.RequireSignature, b.Terms.Schedule, b.Terms.ExpiresAt = nil, nil, nil
	c := mandateRequest("mreq_3", "usr_b", "agt_c", t0.Add(2*time.Second))
	commit(t, s, &pb.Batch{MandateRequestPart: pb.MandateRequestPart{MandateRequests: []pb.MandateRequest{a, b, c}}})
	got, err := s.MandateRequest(ctx, "mreq_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "MandateRequest", *got, a)
	_, err = s.MandateRequest(ctx, "mreq_none")
	wantNotFound(t, "a missing mandate request", err)

	list := func(f pb.MandateRequestFilter) ([]string, bool) {
		t.Helper()
		rs, more, err := s.ListMandateRequests(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids, more
	}
	if ids, more := list(pb.MandateRequestFilter{UserID: "usr_a"}); !equal(ids, "mreq_2", "mreq_1") || more {
		t.Fatalf("usr_a's requests = %v, %v; want mreq_2, mreq_1", ids, more)
	}
	if ids, more := list(pb.MandateRequestFilter{UserID: "usr_a", Limit: 1}); !equal(ids, "mreq_2") || !more {
		t.Fatalf("usr_a's first page = %v, %v; want mreq_2 and more", ids, more)
	}
	if ids, _ := list(pb.MandateRequestFilter{UserID: "usr_a", StartingAfter: "mreq_2"}); !equal(ids, "mreq_1") {
		t.Fatalf("usr_a's second page = %v; want mreq_1", ids)
	}
	if ids, _ := list(pb.MandateRequestFilter{AgentID: "agt_c"}); !equal(ids, "mreq_3") {
		t.Fatalf("agt_c's requests = %v; want mreq_3", ids)
	}

	// The decision: from version 1 to 2.
	d := a
	now := sec(t0.Add(time.Minute))
	d.Status, d.MandateID, d.DecidedAt, d.Version = pb.MandateRequestApproved, "mdt_1", &now, 2
	commit(t, s, &pb.Batch{MandateRequestPart: pb.MandateRequestPart{MandateRequests: []pb.MandateRequest{d}}})
	got, _ = s.MandateRequest(ctx, "mreq_1")
	check(t, "MandateRequest once decided", *got, d)
	if ids, _ := list(pb.MandateRequestFilter{UserID: "usr_a", Status: pb.MandateRequestPending}); !equal(ids, "mreq_2") {
		t.Fatalf("usr_a's pending requests = %v; want mreq_2", ids)
	}

	if _, ok := s.(pb.SharedStore); ok {
		again := a
		again.Status, again.Version = pb.MandateRequestRefused, 2 // over version 1; the store holds 2
		err := s.Commit(ctx, &pb.Batch{MandateRequestPart: pb.MandateRequestPart{MandateRequests: []pb.MandateRequest{again}}})
		if !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a second decision: %v, want ErrStoreConflict", err)
		}
		got, _ = s.MandateRequest(ctx, "mreq_1")
		check(t, "MandateRequest after a refused decision", *got, d)
		dup := c
		err = s.Commit(ctx, &pb.Batch{MandateRequestPart: pb.MandateRequestPart{MandateRequests: []pb.MandateRequest{dup}}})
		if !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a request made twice: %v, want ErrStoreConflict", err)
		}
	}
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
