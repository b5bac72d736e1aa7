package storetest

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func mandate(id, user, agent string, created time.Time) pb.Mandate {
	exp := created.Add(30 * 24 * time.Hour)
	return pb.Mandate{ID: id, Object: "mandate", UserID: user, AgentID: agent, Description: "breakfast, at most 30 CNY",
		Currency: "CNY", MaxAmount: 3000, Budget: pb.Budget{Amount: 15000, Period: pb.PeriodWeek},
		Categories: []string{"food_and_drink"}, ValidFrom: created, ExpiresAt: &exp, MaxPayments: 20,
		Schedule:  &pb.Schedule{Days: []string{"mon", "fri"}, Start: "07:00", End: "10:00", TimeZone: "Asia/Shanghai"},
		Condition: `payment.amount < 2000`, CreatedAt: created}
}

// testMandates: a mandate reads back whole; only its revocation changes;
// lists are a user's, newest first, optionally one agent's.
func testMandates(t *testing.T, s pb.Store) {
	ctx := t.Context()
	var ms []pb.Mandate
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		agent := "agt_a"
		if i%2 == 1 {
			agent = "agt_b"
		}
		ms = append(ms, mandate(pb.NewID(pb.PrefixMandate, at), "usr_alice", agent, at))
	}
	other := mandate(pb.NewID(pb.PrefixMandate, t0), "usr_bob", "agt_a", t0)
	commit(t, s, &pb.Batch{MandatePart: pb.MandatePart{Mandates: append(slices.Clone(ms), other)}})
	got, err := s.Mandate(ctx, ms[0].ID)
	if err != nil {
		t.Fatalf("Mandate: %v", err)
	}
	want := ms[0]
	if g, w := normMandate(*got), normMandate(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("Mandate read back\n\t%+v\nwant\n\t%+v", g, w)
	}
	revoked := t0.Add(time.Hour)
	r := ms[0]
	r.RevokedAt = &revoked
	r.Description = "changed" // not stored: a definition never changes
	commit(t, s, &pb.Batch{MandatePart: pb.MandatePart{Mandates: []pb.Mandate{r}}})
	got, _ = s.Mandate(ctx, ms[0].ID)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(sec(revoked)) || got.Description != ms[0].Description {
		t.Fatalf("after revocation: %+v", got)
	}
	_, err = s.Mandate(ctx, "mdt_missing")
	wantNotFound(t, "Mandate(mdt_missing)", err)
	list, more, err := s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_alice", Limit: 3})
	if err != nil || !more || len(list) != 3 || list[0].ID != ms[4].ID || list[2].ID != ms[2].ID {
		t.Fatalf("first page: %d more=%v %v", len(list), more, err)
	}
	list, more, err = s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_alice", StartingAfter: list[2].ID, Limit: 3})
	if err != nil || more || len(list) != 2 || list[1].ID != ms[0].ID {
		t.Fatalf("second page: %d more=%v %v", len(list), more, err)
	}
	list, _, _ = s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_alice", AgentID: "agt_b"})
	if len(list) != 2 || list[0].AgentID != "agt_b" || list[1].AgentID != "agt_b" {
		t.Fatalf("agent filter: %+v", list)
	}
	list, _, _ = s.ListMandates(ctx, pb.MandateFilter{UserID: "usr_nobody"})
	if list == nil || len(list) != 0 {
		t.Fatalf("no mandates: %#v", list)
	}
}

func normMandate(m pb.Mandate) pb.Mandate {
	m.ValidFrom, m.CreatedAt = sec(m.ValidFrom), sec(m.CreatedAt)
	if m.ExpiresAt != nil {
		e := sec(*m.ExpiresAt)
		m.ExpiresAt = &e
	}
	return m
}

// testMandateUsage: usage rows read back, change, and can never pass their
// caps: a batch that would is refused whole.
func testMandateUsage(t *testing.T, s pb.Store) {
	ctx := t.Context()
	_, err := s.MandateUsage(ctx, "mdt_1", "2026-W48")
	wantNotFound(t, "MandateUsage of nothing", err)
	week := pb.MandateUsageRow{MandateID: "mdt_1", PeriodKey: "2026-W48", Spent: 1000, Payments: 1, CapAmount: 5000}
	all := pb.MandateUsageRow{MandateID: "mdt_1", PeriodKey: "*", Payments: 1, CapAmount: pb.MaxAmount, CapPayments: 2}
	commit(t, s, &pb.Batch{MandatePart: pb.MandatePart{Usage: []pb.MandateUsageRow{week, all}}})
	week.Spent, week.Payments, all.Payments = 5000, 2, 2
	commit(t, s, &pb.Batch{MandatePart: pb.MandatePart{Usage: []pb.MandateUsageRow{week, all}}})
	got, err := s.MandateUsage(ctx, "mdt_1", "2026-W48")
	if err != nil || *got != week {
		t.Fatalf("usage: %+v %v; want %+v", got, err, week)
	}
	for name, bad := range map[string]pb.MandateUsageRow{
		"over budget":   {MandateID: "mdt_1", PeriodKey: "2026-W48", Spent: 5001, Payments: 3, CapAmount: 5000},
		"over payments": {MandateID: "mdt_1", PeriodKey: "*", Payments: 3, CapAmount: pb.MaxAmount, CapPayments: 2},
		"negative":      {MandateID: "mdt_1", PeriodKey: "2026-W48", Spent: -1, Payments: 2, CapAmount: 5000},
	} {
		b := &pb.Batch{MandatePart: pb.MandatePart{Usage: []pb.MandateUsageRow{bad}}, PaymentPart: pb.PaymentPart{Users: []pb.User{{ID: "usr_" + strings.ReplaceAll(name, " ", "_"), Name: "x", CreatedAt: t0}}}}
		asWriter(t, s, b)
		if err := s.Commit(ctx, b); err == nil {
			t.Errorf("%s: a usage row past its cap was committed", name)
		}
		if _, err := s.User(ctx, b.Users[0].ID); pb.ErrorCode(err) != pb.ErrNotFound {
			t.Errorf("%s: the refused batch's user was written", name)
		}
	}
	if got, _ := s.MandateUsage(ctx, "mdt_1", "2026-W48"); *got != week {
		t.Fatalf("usage after refused batches: %+v", got)
	}
}
