package storetest

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// testMerchantTransfers: the posted transfers on a merchant's accounts, in
// time order, signed as the merchant's balance moved, with the payment and
// refund behind each; holds and voids, other merchants' transfers and
// those outside the period are left out; pages follow the cursor.
func testMerchantTransfers(t *testing.T, s pb.Store) {
	ctx := t.Context()
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	accts := []pb.Account{
		{ID: 1, Owner: "usr_alice", Currency: "CNY", CreditsPosted: 10_000, DebitsPosted: 1000 + 50, CreditsPending: 0},
		{ID: 2, Owner: "mch_cafe", Currency: "CNY", CreditsPosted: 1000, DebitsPosted: 10 + 300},
		{ID: 3, Owner: pb.OwnerPlatform, Currency: "CNY", CreditsPosted: 10, DebitsPosted: 3},
		{ID: 4, Owner: "mch_other", Currency: "CNY", CreditsPosted: 50},
		{ID: 5, Owner: "mch_cafe", Currency: "USD", CreditsPosted: 700},
		{ID: 6, Owner: "usr_alice", Currency: "USD", CreditsPosted: 1000, DebitsPosted: 700},
	}
	trs := []pb.Transfer{
		{ID: 1, Kind: pb.TransferPending, DebitAccountID: 1, CreditAccountID: 2, Amount: 1000, Currency: "CNY", Ref: "pay_1", CreatedAt: at(0)},
		{ID: 2, Kind: pb.TransferPost, DebitAccountID: 1, CreditAccountID: 2, Amount: 1000, Currency: "CNY", PendingID: 1, Ref: "pay_1", CreatedAt: at(1)},
		{ID: 3, Kind: pb.TransferPosted, DebitAccountID: 2, CreditAccountID: 3, Amount: 10, Currency: "CNY", Ref: "pay_1", CreatedAt: at(1)},
		{ID: 4, Kind: pb.TransferPosted, DebitAccountID: 2, CreditAccountID: 1, Amount: 297, Currency: "CNY", Ref: "re_1", CreatedAt: at(2)},
		{ID: 5, Kind: pb.TransferPosted, DebitAccountID: 3, CreditAccountID: 1, Amount: 3, Currency: "CNY", Ref: "re_1", CreatedAt: at(2)},
		{ID: 6, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 4, Amount: 50, Currency: "CNY", Ref: "pay_2", CreatedAt: at(2)},
		{ID: 7, Kind: pb.TransferPending, DebitAccountID: 6, CreditAccountID: 5, Amount: 900, Currency: "USD", Ref: "pay_3", CreatedAt: at(3)},
		{ID: 8, Kind: pb.TransferVoid, DebitAccountID: 6, CreditAccountID: 5, Amount: 900, Currency: "USD", PendingID: 7, Ref: "pay_3", CreatedAt: at(4)},
		{ID: 9, Kind: pb.TransferPosted, DebitAccountID: 6, CreditAccountID: 5, Amount: 700, Currency: "USD", Ref: "pay_4", CreatedAt: at(4)},
		{ID: 10, Kind: pb.TransferPosted, DebitAccountID: 2, CreditAccountID: 1, Amount: 3, Currency: "CNY", Ref: "re_2", CreatedAt: at(9)},
	}
	p1 := payment("pay_1", "usr_alice", "mch_cafe", "", t0)
	p1.Metadata = map[string]string{"payment_link": "plink_forged"} // the link's own row counts
	p4 := payment("pay_4", "usr_alice", "mch_cafe", "", at(4))
	p4.Currency, p4.Amount, p4.Description = "USD", 700, "tea"
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: accts, Transfers: trs},
		PaymentPart: pb.PaymentPart{Payments: []pb.Payment{p1, p4}, Refunds: []pb.Refund{
			{ID: "re_1", Object: "refund", PaymentID: "pay_1", Amount: 300, Currency: "CNY", Reason: "dispute dsp_1", Status: "succeeded", CreatedAt: sec(at(2))},
			{ID: "re_2", Object: "refund", PaymentID: "pay_1", Amount: 3, Currency: "CNY", Status: "succeeded", CreatedAt: sec(at(9))}}},
		PayLinkPart: pb.PayLinkPart{LinkPayments: []pb.PayLinkPayment{{LinkID: "plink_x", PaymentID: "pay_1", CreatedAt: sec(t0)}}}})

	type row struct {
		id     int64
		amount int64
		cur    string
		pay    string
		other  string
		refund int64
	}
	all := []row{{2, 1000, "CNY", "pay_1", "usr_alice", 0}, {3, -10, "CNY", "pay_1", pb.OwnerPlatform, 0},
		{4, -297, "CNY", "pay_1", "usr_alice", 300}, {9, 700, "USD", "pay_4", "usr_alice", 0}, {10, -3, "CNY", "pay_1", "usr_alice", 3}}
	read := func(f pb.MerchantTransferFilter) []pb.MerchantTransfer {
		t.Helper()
		got, err := s.MerchantTransfers(ctx, f)
		if err != nil {
			t.Fatalf("MerchantTransfers(%+v): %v", f, err)
		}
		return got
	}
	got := read(pb.MerchantTransferFilter{MerchantID: "mch_cafe", From: t0, To: at(10)})
	if len(got) != len(all) {
		t.Fatalf("MerchantTransfers returned %d rows, want %d: %+v", len(got), len(all), got)
	}
	for i, w := range all {
		g := got[i]
		if g.ID != w.id || g.Amount != w.amount || g.Currency != w.cur || g.PaymentID != w.pay || g.Counterparty != w.other || g.RefundAmount != w.refund {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	if g := got[0]; g.Kind != pb.TransferPost || g.Ref != "pay_1" || !g.CreatedAt.Equal(milli(at(1))) || g.PayLinkID != "plink_x" || g.Description != "coffee" {
		t.Errorf("the capture's context: %+v", g)
	}
	if g := got[3]; g.PayLinkID != "" {
		t.Errorf("a payment made without a link has link %q", g.PayLinkID)
	}
	if g := got[2]; g.Ref != "re_1" || g.RefundReason != "dispute dsp_1" || g.PayLinkID != "plink_x" {
		t.Errorf("the refund's context: %+v", g)
	}

	// The period is [From, To); pages follow (CreatedAt, ID).
	if got := read(pb.MerchantTransferFilter{MerchantID: "mch_cafe", From: at(2), To: at(9)}); len(got) != 2 || got[0].ID != 4 || got[1].ID != 9 {
		t.Errorf("MerchantTransfers of [2s, 9s) = %+v, want transfers 4 and 9", got)
	}
	var ids []int64
	f := pb.MerchantTransferFilter{MerchantID: "mch_cafe", From: t0, To: at(10), Limit: 2}
	for range 5 {
		page := read(f)
		for _, g := range page {
			ids = append(ids, g.ID)
		}
		if len(page) < f.Limit {
			break
		}
		f.AfterTime, f.AfterID = page[len(page)-1].CreatedAt, page[len(page)-1].ID
	}
	if fmt.Sprint(ids) != "[2 3 4 9 10]" {
		t.Errorf("paged MerchantTransfers = %v, want [2 3 4 9 10]", ids)
	}
	if got := read(pb.MerchantTransferFilter{MerchantID: "mch_none", From: t0, To: at(10)}); len(got) != 0 {
		t.Errorf("MerchantTransfers of an unknown merchant = %+v", got)
	}
}
