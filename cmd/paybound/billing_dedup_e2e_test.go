package main

import (
	"testing"
	"time"
)

// TestTokenPayDedupWindow: an event ID is a duplicate for at least the
// 35-day window (the pruner forgets nothing within it), then forgotten;
// the same event sent again with its timestamp is refused as too late,
// never charged twice; its usage stays; one sent again without a timestamp
// is a new event. The pruner runs on the injected clock.
func TestTokenPayDedupWindow(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	mk := w.merchKey
	w.ok(201, w.call("POST", "/v1/billing/prices", mk, "", map[string]any{"model": "m", "currency": "USD", "unit_price": "10000"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", mk, "", map[string]any{"customer": w.user, "amount": 10000, "currency": "USD"}))
	at := clock.Now().Format(time.RFC3339)
	ev := func(id string, withTime bool) map[string]any {
		e := map[string]any{"id": id, "customer": w.user, "model": "m", "usage": map[string]any{"output": 7}}
		if withTime {
			e["timestamp"] = at
		}
		return e
	}
	if r := w.events(ev("d1", true), ev("d2", false)); eventStatuses(r) != "accepted,accepted" {
		t.Fatalf("first: %s", r.raw)
	}
	prune := func() int {
		t.Helper()
		n, err := w.m.billing.PruneEventIDs(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Within the window (and its margin): remembered.
	clock.Advance(35*24*time.Hour + 23*time.Hour)
	if n := prune(); n != 0 {
		t.Fatalf("the pruner forgot %d IDs within the window", n)
	}
	if r := w.events(ev("d1", true), ev("d2", false)); eventStatuses(r) != "refused:billing_event_too_late,duplicate" {
		t.Fatalf("within the window: %s", r.raw)
	}
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 10000-14 {
		t.Fatalf("credit within the window: %d", a)
	}
	// Past it: forgotten.
	clock.Advance(2 * time.Hour)
	if n := prune(); n != 2 {
		t.Fatalf("the pruner forgot %d IDs past the window, want 2", n)
	}
	if n := prune(); n != 0 {
		t.Fatalf("the pruner forgot %d more", n)
	}
	r := w.events(ev("d1", true), ev("d2", false))
	if eventStatuses(r) != "refused:billing_event_too_late,accepted" {
		t.Fatalf("past the window: %s", r.raw)
	}
	if a, _, _ := w.creditOf(mk, "", w.user, "USD"); a != 10000-21 {
		t.Fatalf("credit past the window: %d, want d2 charged again as a new event only", a)
	}
	// The forgotten events' usage stays.
	u := w.ok(200, w.call("GET", "/v1/billing/customers/"+w.user+"/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z", mk, "", nil))
	if d := u.body["data"].([]any); len(d) != 1 || d[0].(map[string]any)["events"].(float64) != 2 || d[0].(map[string]any)["charged"].(float64) != 14 {
		t.Fatalf("November 1st's usage after the pruning: %s", u.raw)
	}
	// And d2 is a duplicate again.
	if r := w.events(ev("d2", false)); eventStatuses(r) != "duplicate" {
		t.Fatalf("d2 again: %s", r.raw)
	}
	w.verify()
}
