package sqlstore

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestUsagePacksBounded: a batch's lines are grouped by provider, customer
// and hour, each group cut into packs of at most maxPackLines lines but
// for the rest of an event's, and no event is split; every line is in
// one pack, in its order.
func TestUsagePacksBounded(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)
	var lines []pb.UsageLine
	for i := range 3*maxPackLines/2 + 7 {
		customer := "usr_1"
		if i%5 == 0 {
			customer = "usr_2"
		}
		e := pb.UsageLine{ProviderID: "mch_a", EventID: fmt.Sprintf("e%d", i), CustomerID: customer, Meter: "llm_tokens", Time: at, CreatedAt: at}
		for _, tt := range []string{"input", "output", "reasoning"}[:1+i%3] {
			l := e
			l.Line = tt
			lines = append(lines, l)
		}
	}
	packs := UsagePacks(lines)
	seen := map[string]int{}
	total := 0
	for n, p := range packs {
		first := p.Lines[0]
		for i, l := range p.Lines {
			if l.CustomerID != first.CustomerID || floorHour(l.Time.UnixMilli()) != floorHour(first.Time.UnixMilli()) {
				t.Fatalf("pack %d mixes %s and %s", n, first.CustomerID, l.CustomerID)
			}
			if i >= maxPackLines && !sameEvent(&p.Lines[i-1], &l) {
				t.Fatalf("pack %d holds %d lines and began a new event at line %d", n, len(p.Lines), i)
			}
			if prev, ok := seen[l.EventID]; ok && prev != n {
				t.Fatalf("event %s is split between packs %d and %d", l.EventID, prev, n)
			}
			seen[l.EventID] = n
		}
		total += len(p.Lines)
	}
	if total != len(lines) || len(packs) < 3 {
		t.Fatalf("%d packs of %d lines; want every one of %d lines, in at least 3 packs", len(packs), total, len(lines))
	}
	var mine []pb.UsageLine
	for _, l := range lines {
		if l.CustomerID == "usr_1" {
			mine = append(mine, l)
		}
	}
	ps, n := UsagePacks(mine), 0
	for _, p := range ps {
		n += len(p.Lines)
	}
	if want := (len(mine) + maxPackLines - 1) / maxPackLines; len(mine) <= maxPackLines || len(ps) != want || n != len(mine) {
		t.Fatalf("%d lines of one customer in one hour: %d packs of %d lines, want %d", len(mine), len(ps), n, want)
	}
	if one := UsagePacks(lines[:10]); len(one) != 2 {
		t.Fatalf("10 lines of two customers: %d packs, want 2", len(one))
	}
}
