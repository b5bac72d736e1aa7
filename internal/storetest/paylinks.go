package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func payLink(id, merchant string, created time.Time) pb.PayLink {
	exp := sec(created.Add(24 * time.Hour))
	return pb.PayLink{ID: id, Object: "payment_link", MerchantID: merchant, Amount: 1500, Currency: "CNY",
		Description: "breakfast set ü", Active: true, ExpiresAt: &exp, MaxUses: 3, CreatedAt: sec(created), Version: 1}
}

// testPayLinks: links are written whole and read back (but for the URL,
// which is not stored), changed version by version, listed per merchant
// newest first, and their payments recorded; a shared store refuses a
// change from a version that is not the stored one.
func testPayLinks(t *testing.T, s pb.Store) {
	ctx := t.Context()
	a := payLink("plink_1", "mch_a", t0)
	b := payLink("plink_2", "mch_a", t0.Add(time.Second))
	b.ExpiresAt, b.MaxUses = nil, 0
	c := payLink("plink_3", "mch_b", t0.Add(2*time.Second))
	withURL := a
	withURL.URL = "https://pay.example.com/l/plink_1"
	commit(t, s, &pb.Batch{PayLinkPart: pb.PayLinkPart{PayLinks: []pb.PayLink{withURL, b, c}}})
	got, err := s.PayLink(ctx, "plink_1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "PayLink", *got, a)
	_, err = s.PayLink(ctx, "plink_none")
	wantNotFound(t, "a missing payment link", err)

	// Two uses in one batch, each from the version before it, and the
	// payments they record.
	u1, u2 := a, a
	u1.Uses, u1.Version = 1, 2
	u2.Uses, u2.Version = 2, 3
	commit(t, s, &pb.Batch{PayLinkPart: pb.PayLinkPart{PayLinks: []pb.PayLink{u1, u2},
		LinkPayments: []pb.PayLinkPayment{{LinkID: "plink_1", PaymentID: "pay_2", CreatedAt: t0}, {LinkID: "plink_1", PaymentID: "pay_1", CreatedAt: t0}}}})
	got, _ = s.PayLink(ctx, "plink_1")
	check(t, "PayLink after two uses", *got, u2)
	if ps, more, err := s.PayLinkPayments(ctx, pb.PayLinkFilter{LinkID: "plink_1"}); err != nil || strings.Join(ps, ",") != "pay_2,pay_1" || more {
		t.Fatalf("PayLinkPayments = %v, %v, %v; want pay_2,pay_1", ps, more, err)
	}
	if ps, more, err := s.PayLinkPayments(ctx, pb.PayLinkFilter{LinkID: "plink_1", Limit: 1}); err != nil || strings.Join(ps, ",") != "pay_2" || !more {
		t.Fatalf("PayLinkPayments' first page = %v, %v, %v; want pay_2 and more", ps, more, err)
	}
	if ps, more, err := s.PayLinkPayments(ctx, pb.PayLinkFilter{LinkID: "plink_1", StartingAfter: "pay_2"}); err != nil || strings.Join(ps, ",") != "pay_1" || more {
		t.Fatalf("PayLinkPayments' second page = %v, %v, %v; want pay_1", ps, more, err)
	}
	if ps, _, err := s.PayLinkPayments(ctx, pb.PayLinkFilter{LinkID: "plink_2"}); err != nil || len(ps) != 0 {
		t.Fatalf("PayLinkPayments of an unused link = %v, %v; want none", ps, err)
	}
	if l, err := s.PayLinkOfPayment(ctx, "pay_2"); err != nil || l != "plink_1" {
		t.Fatalf("PayLinkOfPayment(pay_2) = %q, %v; want plink_1", l, err)
	}
	if l, err := s.PayLinkOfPayment(ctx, "pay_9"); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Fatalf("PayLinkOfPayment of a payment no link made = %q, %v; want ErrNotFound", l, err)
	}

	if _, ok := s.(pb.SharedStore); ok {
		stale := a
		stale.Uses, stale.Version = 1, 2 // from version 1; the store holds 3
		err := s.Commit(ctx, &pb.Batch{PayLinkPart: pb.PayLinkPart{PayLinks: []pb.PayLink{stale},
			LinkPayments: []pb.PayLinkPayment{{LinkID: "plink_1", PaymentID: "pay_3", CreatedAt: t0}}}})
		if !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a change from a stale version: %v, want ErrStoreConflict", err)
		}
		got, _ = s.PayLink(ctx, "plink_1")
		check(t, "PayLink after a refused change", *got, u2)
		if ps, _, _ := s.PayLinkPayments(ctx, pb.PayLinkFilter{LinkID: "plink_1"}); len(ps) != 2 {
			t.Fatalf("a refused batch recorded a payment: %v", ps)
		}
		dup := c
		dup.Description = "another process's link of the same ID"
		if err := s.Commit(ctx, &pb.Batch{PayLinkPart: pb.PayLinkPart{PayLinks: []pb.PayLink{dup}}}); !errors.Is(err, pb.ErrStoreConflict) {
			t.Fatalf("a second new link of one ID: %v, want ErrStoreConflict", err)
		}
	}

	for _, tc := range []struct {
		f    pb.PayLinkFilter
		want []string
		more bool
	}{
		{pb.PayLinkFilter{MerchantID: "mch_a"}, []string{"plink_2", "plink_1"}, false},
		{pb.PayLinkFilter{MerchantID: "mch_a", Limit: 1}, []string{"plink_2"}, true},
		{pb.PayLinkFilter{MerchantID: "mch_a", StartingAfter: "plink_2", Limit: 1}, []string{"plink_1"}, false},
		{pb.PayLinkFilter{MerchantID: "mch_b"}, []string{"plink_3"}, false},
		{pb.PayLinkFilter{MerchantID: "mch_none"}, []string{}, false},
	} {
		ls, more, err := s.ListPayLinks(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, l := range ls {
			ids = append(ids, l.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") || more != tc.more {
			t.Errorf("ListPayLinks(%+v) = %v, has_more %v; want %v, %v", tc.f, ids, more, tc.want, tc.more)
		}
	}
}
