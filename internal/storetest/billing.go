package storetest

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
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

// testUsageLines: usage lines committed over many batches (several
// customers and hours in one batch, events on both sides of an hour's
// edge, multi-line events, generic meters' dims, models with quotes,
// tabs and non-ASCII) are read back exactly, in order, for ranges that
// begin and end inside hours, against a model of what was committed; a
// limit returns more than the limit when there is more, and the order of
// what it returns is the model's.
func testUsageLines(t *testing.T, s pb.Store) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(20, 18))
	customers := []string{"usr_1", "usr_2", "agt_3"}
	models := []string{"gpt-x", `mo"del\x`, "tab\there", "modèle-é", ""}
	base := t0.Truncate(time.Hour).Add(-30 * time.Minute)
	var all []pb.UsageLine
	seq := 0
	for batch := range 40 {
		var lines []pb.UsageLine
		created := sec(t0.Add(time.Duration(batch) * time.Second))
		for range 1 + rng.IntN(30) {
			seq++
			e := pb.UsageLine{ProviderID: "mch_u", EventID: "ev-" + strconv.Itoa(seq), CustomerID: customers[rng.IntN(len(customers))],
				Meter: "llm_tokens", Model: models[rng.IntN(len(models))], PriceID: "prc_1", CreatedAt: created,
				Time: base.Add(time.Duration(rng.Int64N(int64(4 * time.Hour)))).Truncate(time.Millisecond).UTC()}
			if rng.IntN(5) == 0 {
				e.ReservationID = "rsv_" + strconv.Itoa(seq)
			}
			if rng.IntN(6) == 0 {
				e.Meter, e.Model, e.Dims, e.Line = "mtr_1", "", map[string]string{"region": "eu\"\n", "tier": strconv.Itoa(seq)}, ""
				e.Quantity, e.Charged = rng.Int64N(1000), rng.Int64N(10)
				lines = append(lines, e)
				continue
			}
			for _, tt := range []string{"input", "output", "reasoning"}[:1+rng.IntN(3)] {
				l := e
				l.Line, l.Quantity, l.Charged, l.Overdraft, l.Uncollected = tt, rng.Int64N(1e6), rng.Int64N(1e4), rng.Int64N(3), rng.Int64N(2)
				lines = append(lines, l)
			}
		}
		commit(t, s, &pb.Batch{BillingPart: pb.BillingPart{UsageLines: lines}})
		all = append(all, lines...)
	}
	order := func(a, b pb.UsageLine) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.EventID, b.EventID); c != 0 {
			return c
		}
		return strings.Compare(a.Line, b.Line)
	}
	slices.SortFunc(all, order)
	for i := range 60 {
		cust := customers[i%len(customers)]
		from := base.Add(time.Duration(rng.Int64N(int64(4 * time.Hour))))
		to := from.Add(time.Duration(rng.Int64N(int64(3 * time.Hour))))
		if i%10 == 0 {
			from, to = base, base.Add(5*time.Hour)
		}
		var want []pb.UsageLine
		for _, l := range all {
			if l.CustomerID == cust && !l.Time.Before(from) && l.Time.Before(to) {
				want = append(want, l)
			}
		}
		got, err := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_u", CustomerID: cust, From: from, To: to, Limit: pb.MaxUsageEvents})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("UsageLines(%s, %v, %v) = %d lines, want %d", cust, from, to, len(got), len(want))
		}
		for j := range want {
			check(t, "UsageLines["+strconv.Itoa(j)+"]", got[j], want[j])
		}
		if len(want) > 3 {
			limit := rng.IntN(len(want) - 1)
			got, err := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_u", CustomerID: cust, From: from, To: to, Limit: limit})
			if err != nil || len(got) <= limit || len(got) > len(want) {
				t.Fatalf("UsageLines limited to %d of %d = %d lines, %v; want more than the limit", limit, len(want), len(got), err)
			}
			for j := range got {
				check(t, "UsageLines limited["+strconv.Itoa(j)+"]", got[j], want[j])
			}
		}
	}
	if got, err := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_other", CustomerID: "usr_1", From: base, To: base.Add(5 * time.Hour), Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("another provider's usage of usr_1 = %v, %v; want none", got, err)
	}
}

// LegacyUsageInsert writes one of LegacyUsageRows into billing_usage as
// it was before usage packs (migration 0027): a row an event.
const LegacyUsageInsert = `INSERT INTO billing_usage (provider_id, customer_id, time_ms, event_id, created_at, meter, model, reservation_id, dims, lines)
	VALUES ('mch_a', 'usr_1', $1, $2, $3, $4, $5, $6, $7, $8)`

// LegacyUsageAt is when LegacyUsageRows' events happened: a millisecond
// before an hour's end, so that they span two hours.
var LegacyUsageAt = time.Date(2026, 12, 5, 10, 59, 59, 999e6, time.UTC)

// LegacyUsageRows are three events as billing_usage held them: one of two
// lines with a reservation, a generic meter's with dims, one whose model
// holds a quote, a tab and non-ASCII.
func LegacyUsageRows() [][]any {
	at := LegacyUsageAt
	return [][]any{
		{at.UnixMilli(), "ev-1", at.Unix(), "llm_tokens", "gpt-x", "rsv_1", "{}", "input\t1200\tprc_1\t3\t2\t1\noutput\t300\tprc_1\t1\t0\t0"},
		{at.UnixMilli() + 1, "ev-2", at.Unix(), "mtr_1", "", "", `{"region":"eu \"north\""}`, "\t7\tprc_2\t9\t0\t0"},
		{at.UnixMilli() - 1, "ev-3", at.Unix(), "llm_tokens", "mo\"dèl\t", "", "{}", "output\t5\tprc_1\t0\t0\t5"},
	}
}

// CheckLegacyUsage checks that s, migrated from a database holding
// LegacyUsageRows, reads their lines back as they were.
func CheckLegacyUsage(t *testing.T, s pb.Store) {
	t.Helper()
	at := LegacyUsageAt
	got, err := s.UsageLines(t.Context(), pb.UsageFilter{ProviderID: "mch_a", CustomerID: "usr_1", From: at.Add(-time.Hour), To: at.Add(time.Hour), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	line := func(event, line, meter, model, rsv string, ms, q, charged, over, unc int64, price string, dims map[string]string) pb.UsageLine {
		return pb.UsageLine{ProviderID: "mch_a", CustomerID: "usr_1", EventID: event, Line: line, Meter: meter, Model: model, ReservationID: rsv,
			Time: time.UnixMilli(ms).UTC(), Quantity: q, PriceID: price, Charged: charged, Overdraft: over, Uncollected: unc, Dims: dims,
			CreatedAt: sec(at)}
	}
	ms := at.UnixMilli()
	want := []pb.UsageLine{
		line("ev-3", "output", "llm_tokens", "mo\"dèl\t", "", ms-1, 5, 0, 0, 5, "prc_1", nil),
		line("ev-1", "input", "llm_tokens", "gpt-x", "rsv_1", ms, 1200, 3, 2, 1, "prc_1", nil),
		line("ev-1", "output", "llm_tokens", "gpt-x", "rsv_1", ms, 300, 1, 0, 0, "prc_1", nil),
		line("ev-2", "", "mtr_1", "", "", ms+1, 7, 9, 0, 0, "prc_2", map[string]string{"region": `eu "north"`}),
	}
	if len(got) != len(want) {
		t.Fatalf("UsageLines after the migration = %+v; want %+v", got, want)
	}
	for i := range want {
		check(t, "UsageLines["+strconv.Itoa(i)+"] after the migration", got[i], want[i])
	}
}
