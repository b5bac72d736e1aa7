package sqlite_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	pb "github.com/paybound/paybound"

	"github.com/paybound/paybound/internal/storetest"
)

// TestUsagePacksMigration: the usage rows stored before packs (a row an
// event) read back the same after migration 0027, which makes each a pack
// of its own and drops the old table.
func TestUsagePacksMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 26)
	for _, r := range storetest.LegacyUsageRows() {
		if _, err := db.Exec(storetest.LegacyUsageInsert, r...); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckLegacyUsage(t, open(t, path))
	var packs, old int
	if err := openRaw(t, path).QueryRow(`SELECT (SELECT COUNT(*) FROM billing_usage_packs),
		(SELECT COUNT(*) FROM sqlite_schema WHERE name = 'billing_usage')`).Scan(&packs, &old); err != nil {
		t.Fatal(err)
	}
	if packs != 3 || old != 0 {
		t.Fatalf("after the migration: %d packs (want 3), the old table %d times (want 0)", packs, old)
	}
}

// TestEventIDsForgottenByPack: usage event IDs are forgotten through the
// packs of their events (there is no index by time): none before its
// pack is due, then in the order the packs came, a limit stopping inside a
// pack and the next call going on from there, also after a reopen; an ID
// that came back in a newer pack is not forgotten through the older one;
// the IDs a migrated database remembered (0018's, seen after their
// events' arrival) are forgotten too, once seen before the cutoff.
func TestEventIDsForgottenByPack(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 26)
	for _, r := range storetest.LegacyUsageRows() {
		if _, err := db.Exec(storetest.LegacyUsageInsert, r...); err != nil {
			t.Fatal(err)
		}
	}
	legacySeen := storetest.LegacyUsageAt.Add(10 * time.Minute)
	if _, err := db.Exec(`INSERT INTO billing_event_ids (provider_id, event_id, seen_ms) VALUES
		('mch_a', 'ev-1', $1), ('mch_a', 'ev-2', $1), ('mch_a', 'ev-3', $1)`, legacySeen.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	remembered := func(provider string, ids ...string) []string {
		t.Helper()
		seen, err := s.UsageEventsSeen(ctx, provider, ids)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, id := range ids {
			if seen[id] {
				out = append(out, id)
			}
		}
		return out
	}
	forget := func(cutoff time.Time, limit, want int) {
		t.Helper()
		if n, err := s.DeleteUsageEventIDs(ctx, cutoff, limit); err != nil || n != want {
			t.Fatalf("DeleteUsageEventIDs(%v, %d) = %d, %v; want %d", cutoff, limit, n, err, want)
		}
	}
	// The migrated IDs were seen 10 minutes after their packs' arrival.
	forget(storetest.LegacyUsageAt.Add(time.Minute), 10, 0)
	forget(legacySeen.Add(time.Second), 2, 2)
	forget(legacySeen.Add(time.Second), 10, 1)
	if got := remembered("mch_a", "ev-1", "ev-2", "ev-3"); len(got) != 0 {
		t.Fatalf("the migrated IDs still remembered: %v", got)
	}

	// Three batches a second apart; the first with two customers (two packs).
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	var ids [][]string
	for b := range 3 {
		at := t0.Add(time.Duration(b) * time.Second)
		var batch pb.Batch
		var mine []string
		for i := range 5 {
			id := fmt.Sprintf("e%d-%d", b, i)
			customer := "usr_1"
			if b == 0 && i >= 3 {
				customer = "usr_2"
			}
			batch.UsageEventIDs = append(batch.UsageEventIDs, pb.UsageEventID{ProviderID: "mch_b", EventID: id, SeenAt: at.Add(400 * time.Millisecond)})
			batch.UsageLines = append(batch.UsageLines, pb.UsageLine{ProviderID: "mch_b", EventID: id, Line: "input", CustomerID: customer,
				Meter: "llm_tokens", Time: at, Model: "m", Quantity: 1, PriceID: "prc_1", CreatedAt: at})
			mine = append(mine, id)
		}
		if err := s.Commit(ctx, &batch); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, mine)
	}
	all := slices.Concat(ids...)
	// Not due: the first batch's IDs were seen 400 ms into its second,
	// which is all its pack tells.
	forget(t0.Add(400*time.Millisecond), 10, 0)
	forget(t0.Add(999*time.Millisecond), 10, 0)
	// Due: the first batch's two packs, 4 IDs at a time.
	forget(t0.Add(time.Second+500*time.Millisecond), 4, 4)
	if got := remembered("mch_b", all...); !slices.Equal(got, all[4:]) {
		t.Fatalf("after forgetting 4: %v remembered; want %v", got, all[4:])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	// The second batch is due; the third not yet.
	forget(t0.Add(2*time.Second+500*time.Millisecond), 10, 6)
	if got := remembered("mch_b", all...); !slices.Equal(got, ids[2]) {
		t.Fatalf("after forgetting two batches: %v remembered; want %v", got, ids[2])
	}
	// e2-0 comes back (as if forgotten and sent again) in a newer pack: the
	// older pack forgets the rest of its batch, not the newer ID.
	if _, err := openRaw(t, path).Exec(`DELETE FROM billing_event_ids WHERE provider_id = 'mch_b' AND event_id = 'e2-0'`); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Hour)
	if err := s.Commit(ctx, &pb.Batch{BillingPart: pb.BillingPart{
		UsageEventIDs: []pb.UsageEventID{{ProviderID: "mch_b", EventID: "e2-0", SeenAt: later}},
		UsageLines: []pb.UsageLine{{ProviderID: "mch_b", EventID: "e2-0", Line: "input", CustomerID: "usr_1", Meter: "llm_tokens", Time: later,
			Model: "m", Quantity: 1, PriceID: "prc_1", CreatedAt: later}}}}); err != nil {
		t.Fatal(err)
	}
	forget(t0.Add(time.Minute), 10, 4)
	if got := remembered("mch_b", all...); !slices.Equal(got, []string{"e2-0"}) {
		t.Fatalf("after the third batch is due: %v remembered; want e2-0 alone (it came back)", got)
	}
	forget(later.Add(2*time.Second), 10, 1)
	if got := remembered("mch_b", all...); len(got) != 0 {
		t.Fatalf("everything is due, and %v is remembered", got)
	}
	// Nothing is left to walk; the usage stays.
	forget(later.Add(time.Hour), 10, 0)
	lines, err := s.UsageLines(ctx, pb.UsageFilter{ProviderID: "mch_b", CustomerID: "usr_1", From: t0, To: later.Add(time.Hour), Limit: 100})
	if err != nil || len(lines) != 14 {
		t.Fatalf("usage after forgetting = %d lines, %v; want 14", len(lines), err)
	}
}

// TestEventIDsAsJSON: event IDs are written and looked up as JSON arrays;
// any string comes back as it went (quotes, backslashes, control bytes,
// non-ASCII), several providers and arrivals in one batch; an ID stored
// again fails its batch, which leaves nothing behind.
func TestEventIDsAsJSON(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "paybound.db"))
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	awkward := []string{`a"b`, `c\d`, "tab\there", "é-ü", "\x01", "", "plain"}
	var b pb.Batch
	for i, id := range awkward {
		for _, p := range []string{"mch_a", "mch_b"} {
			b.UsageEventIDs = append(b.UsageEventIDs, pb.UsageEventID{ProviderID: p, EventID: id, SeenAt: at.Add(time.Duration(i%2) * time.Millisecond)})
		}
	}
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"mch_a", "mch_b"} {
		seen, err := s.UsageEventsSeen(ctx, p, append(slices.Clone(awkward), "other"))
		if err != nil || len(seen) != len(awkward) || seen["other"] {
			t.Fatalf("UsageEventsSeen(%s) = %v, %v; want every awkward ID and not other", p, seen, err)
		}
		for _, id := range awkward {
			if got, _ := s.UsageEventsSeen(ctx, p, []string{id}); !got[id] {
				t.Errorf("UsageEventsSeen(%s, %q) alone = %v", p, id, got)
			}
		}
	}
	again := pb.Batch{BillingPart: pb.BillingPart{UsageEventIDs: []pb.UsageEventID{{ProviderID: "mch_c", EventID: "new", SeenAt: at},
		{ProviderID: "mch_a", EventID: `a"b`, SeenAt: at}}}}
	if err := s.Commit(ctx, &again); err == nil {
		t.Fatal("a batch storing an ID again committed")
	}
	if seen, _ := s.UsageEventsSeen(ctx, "mch_c", []string{"new"}); seen["new"] {
		t.Fatal("the failed batch left its new ID behind")
	}
}
