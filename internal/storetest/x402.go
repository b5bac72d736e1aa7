package storetest

import (
	"errors"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func tab(id, payment string, created time.Time) pb.Tab {
	return pb.Tab{ID: id, Object: "x402_tab", MerchantID: "mch_a", AgentID: "agt_a", UserID: "usr_a", MandateID: "mdt_a",
		KeyID: "kid", PublicKey: "x", PaymentID: payment, Network: "paybound:test", Currency: "USD", Deposit: 1000,
		DepositAtomic: 10_000_000, Status: pb.TabOpen, ExpiresAt: sec(created.Add(time.Hour)), CreatedAt: sec(created), Version: 1}
}

// testX402Tabs: tabs are written whole and read back by ID and by their
// deposit's payment, changed version by version, and found when their
// closing grace ends; a shared store refuses a change from a version that
// is not the stored one, and a second tab of one ID or one deposit.
func testX402Tabs(t *testing.T, s pb.Store) {
	ctx := t.Context()
	a, b := tab("tab_1", "pay_1", t0), tab("tab_2", "pay_2", t0.Add(time.Second))
	commit(t, s, &pb.Batch{X402Part: pb.X402Part{Tabs: []pb.Tab{a, b}}})
	got, err := s.Tab(ctx, "tab_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "Tab", *got, a)
	if got, err := s.TabOfPayment(ctx, "pay_2"); err != nil || got.ID != "tab_2" {
		t.Fatalf("TabOfPayment(pay_2) = %v, %v", got, err)
	}
	_, err = s.Tab(ctx, "tab_none")
	wantNotFound(t, "a missing tab", err)
	_, err = s.TabOfPayment(ctx, "pay_none")
	wantNotFound(t, "the tab of a payment that is no deposit", err)

	// Two changes in one batch: closing, then closing later.
	c1, c2 := a, a
	at := sec(t0.Add(time.Minute))
	c1.Status, c1.CloseAt, c1.Version = pb.TabClosing, &at, 2
	later := sec(t0.Add(2 * time.Minute))
	c2.Status, c2.CloseAt, c2.Version = pb.TabClosing, &later, 3
	commit(t, s, &pb.Batch{X402Part: pb.X402Part{Tabs: []pb.Tab{c1, c2}}})
	got, _ = s.Tab(ctx, "tab_1")
	check(t, "Tab after two changes", *got, c2)
	if ts, err := s.TabsClosingBefore(ctx, t0.Add(90*time.Second), 10); err != nil || len(ts) != 0 {
		t.Fatalf("TabsClosingBefore, before the grace ends = %v, %v; want none", ts, err)
	}
	if ts, err := s.TabsClosingBefore(ctx, t0.Add(3*time.Minute), 10); err != nil || len(ts) != 1 || ts[0].ID != "tab_1" {
		t.Fatalf("TabsClosingBefore, after the grace = %v, %v; want tab_1", ts, err)
	}

	if _, ok := s.(pb.SharedStore); ok {
		stale := a
		stale.Status, stale.Version = pb.TabClaimed, 2 // from version 1; the store holds 3
		if err := s.Commit(ctx, &pb.Batch{X402Part: pb.X402Part{Tabs: []pb.Tab{stale}}}); !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a change from a stale version: %v, want ErrStoreConflict", err)
		}
		got, _ = s.Tab(ctx, "tab_1")
		check(t, "Tab after a refused change", *got, c2)
		dup := tab("tab_3", "pay_2", t0)
		if err := s.Commit(ctx, &pb.Batch{X402Part: pb.X402Part{Tabs: []pb.Tab{dup}}}); !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a second tab of one deposit: %v, want ErrStoreConflict", err)
		}
	}
}
