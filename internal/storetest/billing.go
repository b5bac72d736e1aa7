package storetest

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func billingObject(id, kind, provider, customer string, version int64, data string, due *time.Time) pb.BillingObject {
	return pb.BillingObject{ID: id, Kind: kind, ProviderID: provider, CustomerID: customer, Version: version,
		Data: json.RawMessage(data), DueAt: due, CreatedAt: sec(t0)}
}

// testBilling: Token Pay's objects are written whole and read back,
// changed version by version, listed per provider, kind and customer, and
// found when due; event IDs are remembered per provider, found, and
// forgotten oldest first in bounded batches (their lines stay); usage
// lines are read back by customer and time, and an ID forgotten may come
// back; a shared store refuses a change from a stale version and an event
// ID another process stored.
func testBilling(t *testing.T, s pb.Store) {
	ctx := t.Context()
	due := sec(t0.Add(time.Minute))
	g1 := billingObject("grant_1", "grant", "mch_a", "usr_1", 1, `{"remaining":100}`, &due)
	g2 := billingObject("grant_2", "grant", "mch_a", "usr_2", 1, `{"remaining":5}`, nil)
	p1 := billingObject("price_1", "price", "mch_a", "", 1, `{"unit_price":"2.50"}`, nil)
	g3 := billingObject("grant_3", "grant", "mch_b", "usr_1", 1, `{"remaining":7}`, nil)
	commit(t, s, &pb.Batch{BillingPart: pb.BillingPart{BillingObjects: []pb.BillingObject{g1, g2, p1, g3}}})
	got, err := s.BillingObject(ctx, "grant_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "BillingObject", *got, g1)
	_, err = s.BillingObject(ctx, "grant_none")
	wantNotFound(t, "a missing billing object", err)

	// Two changes in one batch, each from the version before it; the
	// second is no longer due.
	u1, u2 := g1, g1
	u1.Version, u1.Data = 2, json.RawMessage(`{"remaining":60}`)
	u2.Version, u2.Data, u2.DueAt = 3, json.RawMessage(`{"remaining":10}`), nil
	commit(t, s, &pb.Batch{BillingPart: pb.BillingPart{BillingObjects: []pb.BillingObject{u1, u2}}})
	got, _ = s.BillingObject(ctx, "grant_1")
	check(t, "BillingObject after two changes", *got, u2)

	list := func(provider, customer, kind string, limit int) string {
		t.Helper()
		os, err := s.BillingObjects(ctx, provider, customer, kind, limit)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, o := range os {
			ids = append(ids, o.ID)
		}
		return strings.Join(ids, ",")
	}
	checkIDs(t, "grants of mch_a", list("mch_a", "", "grant", 10), "grant_1,grant_2")
	checkIDs(t, "grants of mch_a, at most 1 (and one more)", list("mch_a", "", "grant", 1), "grant_1,grant_2")
	checkIDs(t, "mch_a's grants of usr_1", list("mch_a", "usr_1", "grant", 10), "grant_1")
	checkIDs(t, "prices of mch_a", list("mch_a", "", "price", 10), "price_1")
	checkIDs(t, "prices of mch_b", list("mch_b", "", "price", 10), "")

	d2 := billingObject("rsv_1", "reservation", "mch_a", "usr_1", 1, `{}`, &due)
	commit(t, s, &pb.Batch{BillingPart: pb.BillingPart{BillingObjects: []pb.BillingObject{d2}}})
	dues, err := s.DueBillingObjects(ctx, due, 10)
	if err != nil || len(dues) != 1 || dues[0].ID != "rsv_1" {
		t.Fatalf("DueBillingObjects = %v, %v; want rsv_1 alone (grant_1 is no longer due)", dues, err)
	}
	if dues, _ := s.DueBillingObjects(ctx, due.Add(-time.Second), 10); len(dues) != 0 {
		t.Fatalf("DueBillingObjects before anything is due = %v", dues)
	}

	l1 := pb.UsageLine{ProviderID: "mch_a", EventID: "ev-1", Line: "input", CustomerID: "usr_1", Meter: "llm_tokens",
		Time: t0.Truncate(time.Millisecond).UTC(), Model: "gpt-x", Quantity: 1200, PriceID: "price_1", Charged: 3, Overdraft: 2, Uncollected: 1,
		ReservationID: "rsv_1", CreatedAt: sec(t0)}
	l2 := l1
	l2.Line, l2.Quantity = "output", 300
	l3 := l1
	l3.EventID, l3.Line, l3.Meter, l3.Model, l3.Time, l3.Dims = "ev-2", "", "mtr_1", "", l1.Time.Add(time.Hour), map[string]string{"region": "eu"}
	seen1 := pb.UsageEventID{ProviderID: "mch_a", EventID: "ev-1", SeenAt: t0.Truncate(time.Millisecond).UTC()}
	seen2 := pb.UsageEventID{ProviderID: "mch_a", EventID: "ev-2", SeenAt: seen1.SeenAt.Add(time.Hour)}
	commit(t, s, &pb.Batch{BillingPart: pb.BillingPart{UsageEventIDs: []pb.UsageEventID{seen1, seen2}, UsageLines: []pb.UsageLine{l1, l2, l3}}})
	for _, c := range []struct {
		provider string
		ids      []string
		want     string
	}{{"mch_a", []string{"ev-1", "ev-2", "ev-3"}, "ev-1,ev-2"}, {"mch_b", []string{"ev-1"}, ""}, {"mch_a", nil, ""},
		// One ID is a point read of its own.
		{"mch_a", []string{"ev-2"}, "ev-2"}, {"mch_a", []string{"ev-3"}, ""}} {
		seen, err := s.UsageEventsSeen(ctx, c.provider, c.ids)
		got := []string{}
		for _, id := range c.ids {
			if seen[id] {
				got = append(got, id)
			}
		}
		if err != nil || strings.Join(got, ",") != c.want || len(seen) != len(got) {
			t.Errorf("UsageEventsSeen(%s, %v) = %v, %v; want %s", c.provider, c.ids, seen, err, c.want)
		}
	}
	lines, err := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_a", CustomerID: "usr_1", From: t0.Add(-time.Second), To: t0.Add(2 * time.Hour), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 {
		t.Fatalf("UsageLines = %d lines, want 3", len(lines))
	}
	for i, want := range []pb.UsageLine{l1, l2, l3} {
		check(t, "UsageLines["+strconv.Itoa(i)+"]", lines[i], want)
	}
	if lines, _ := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_a", CustomerID: "usr_1", From: t0.Add(time.Minute), To: t0.Add(2 * time.Hour), Limit: 10}); len(lines) != 1 {
		t.Fatalf("UsageLines from a minute later = %v; want ev-2 alone", lines)
	}
	if lines, _ := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_a", CustomerID: "usr_1", From: t0.Add(-time.Second), To: t0.Add(2 * time.Hour), Limit: 1}); len(lines) < 2 {
		t.Fatalf("UsageLines limited to 1 = %d lines; want at least 2 (more than the limit)", len(lines))
	}

	if _, ok := s.(pb.SharedStore); ok {
		again := seen1
		again.SeenAt = again.SeenAt.Add(time.Minute)
		if err := s.Commit(ctx, &pb.Batch{BillingPart: pb.BillingPart{UsageEventIDs: []pb.UsageEventID{again}}}); !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("an event ID stored twice: %v, want ErrStoreConflict", err)
		}
	}

	// Forgetting: nothing before the oldest, then one at a time.
	if n, err := s.DeleteUsageEventIDs(ctx, seen1.SeenAt, 10); err != nil || n != 0 {
		t.Fatalf("DeleteUsageEventIDs before the oldest = %d, %v", n, err)
	}
	if n, err := s.DeleteUsageEventIDs(ctx, seen2.SeenAt.Add(time.Millisecond), 1); err != nil || n != 1 {
		t.Fatalf("DeleteUsageEventIDs of 1 = %d, %v", n, err)
	}
	if seen, _ := s.UsageEventsSeen(ctx, "mch_a", []string{"ev-1", "ev-2"}); seen["ev-1"] || !seen["ev-2"] {
		t.Fatalf("after forgetting the oldest: %v, want ev-2 alone", seen)
	}
	if n, err := s.DeleteUsageEventIDs(ctx, seen2.SeenAt.Add(time.Millisecond), 10); err != nil || n != 1 {
		t.Fatalf("DeleteUsageEventIDs of the rest = %d, %v", n, err)
	}
	if seen, _ := s.UsageEventsSeen(ctx, "mch_a", []string{"ev-2"}); seen["ev-2"] {
		t.Fatalf("ev-2 is still remembered")
	}
	// ev-1 comes back: remembered again, its new line beside the old.
	back, backLine := seen1, l1
	back.SeenAt = seen1.SeenAt.Add(40 * 24 * time.Hour)
	backLine.CreatedAt, backLine.Time = sec(back.SeenAt), back.SeenAt
	commit(t, s, &pb.Batch{BillingPart: pb.BillingPart{UsageEventIDs: []pb.UsageEventID{back}, UsageLines: []pb.UsageLine{backLine}}})
	if seen, _ := s.UsageEventsSeen(ctx, "mch_a", []string{"ev-1"}); !seen["ev-1"] {
		t.Fatalf("ev-1 is not remembered again")
	}
	if lines, _ := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_a", CustomerID: "usr_1", From: t0.Add(-time.Second), To: back.SeenAt.Add(time.Hour), Limit: 10}); len(lines) != 4 {
		t.Fatalf("UsageLines after ev-1 came back = %d lines, want 4 (the lines stay)", len(lines))
	}

	if _, ok := s.(pb.SharedStore); ok {
		stale := g1
		stale.Version, stale.Data = 2, json.RawMessage(`{"remaining":0}`) // from version 1; the store holds 3
		err := s.Commit(ctx, &pb.Batch{BillingPart: pb.BillingPart{BillingObjects: []pb.BillingObject{stale}}})
		if !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a change from a stale version: %v, want ErrStoreConflict", err)
		}
		got, _ = s.BillingObject(ctx, "grant_1")
		check(t, "BillingObject after a refused change", *got, u2)
		if err := s.Commit(ctx, &pb.Batch{BillingPart: pb.BillingPart{BillingObjects: []pb.BillingObject{g2}}}); !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a second new object of one ID: %v, want ErrStoreConflict", err)
		}
	}
}

func checkIDs(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}
