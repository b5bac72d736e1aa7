package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func normTransfer(x pb.Transfer) pb.Transfer {
	if x.Timeout.IsZero() {
		x.Timeout = time.Time{} // zero: never expires
	} else {
		x.Timeout = milli(x.Timeout)
	}
	x.CreatedAt = milli(x.CreatedAt)
	return x
}

func checkTransfer(t *testing.T, what string, got *pb.Transfer, want pb.Transfer) {
	t.Helper()
	check(t, what, normTransfer(*got), normTransfer(want))
}

func testCommitAccounts(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts := []pb.Account{
		{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: big},
		{ID: 2, Owner: "usr_alice", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: big, DebitsPending: 300},
		{ID: 3, Owner: "mch_cafe", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPending: 300},
	}
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: accts}})
	for _, want := range accts {
		got, err := s.AccountByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("AccountByID(%d) after insert: %v", want.ID, err)
		}
		check(t, fmt.Sprintf("AccountByID(%d) after insert", want.ID), *got, want)
		got, err = s.Account(ctx, want.Owner, want.Currency)
		if err != nil {
			t.Fatalf("Account(%q, %q) after insert: %v", want.Owner, want.Currency, err)
		}
		check(t, fmt.Sprintf("Account(%q, %q) after insert", want.Owner, want.Currency), *got, want)
	}

	// A second commit with the same IDs carries the final balances.
	upd := []pb.Account{
		{ID: 2, Owner: "usr_alice", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: big, DebitsPosted: 250, DebitsPending: 0},
		{ID: 3, Owner: "mch_cafe", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: 250},
	}
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: upd}})
	for _, want := range append([]pb.Account{accts[0]}, upd...) {
		got, err := s.AccountByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("AccountByID(%d) after update: %v", want.ID, err)
		}
		check(t, fmt.Sprintf("AccountByID(%d) after update", want.ID), *got, want)
		got, err = s.Account(ctx, want.Owner, want.Currency)
		if err != nil {
			t.Fatalf("Account(%q, %q) after update: %v", want.Owner, want.Currency, err)
		}
		check(t, fmt.Sprintf("Account(%q, %q) after update", want.Owner, want.Currency), *got, want)
	}
}

// ledgerFixture is three accounts and one transfer of every kind: a posted
// top-up, a hold that is posted, and a hold without timeout that is voided.
func ledgerFixture() ([]pb.Account, []pb.Transfer) {
	accts := []pb.Account{
		{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: big},
		{ID: 2, Owner: "usr_alice", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: big, DebitsPosted: 400},
		{ID: 3, Owner: "mch_cafe", Currency: "CNY", Flags: pb.DebitsMustNotExceedCredits, CreditsPosted: 400},
	}
	trs := []pb.Transfer{
		{ID: 1, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 2, Amount: big, Currency: "CNY", Ref: "top_1", CreatedAt: t0},
		{ID: 2, Kind: pb.TransferPending, DebitAccountID: 2, CreditAccountID: 3, Amount: 500, Currency: "CNY",
			Timeout: t0.Add(pb.DefaultAuthorizationTTL + 123456789), Ref: "pay_1", CreatedAt: t0.Add(1001500 * time.Microsecond)},
		{ID: 3, Kind: pb.TransferPost, DebitAccountID: 2, CreditAccountID: 3, Amount: 400, Currency: "CNY", PendingID: 2,
			Ref: "pay_1", CreatedAt: t0.Add(2 * time.Second)},
		{ID: 4, Kind: pb.TransferPending, DebitAccountID: 2, CreditAccountID: 3, Amount: 250, Currency: "CNY", Ref: "pay_2",
			CreatedAt: t0.Add(3 * time.Second)},
		{ID: 5, Kind: pb.TransferVoid, DebitAccountID: 2, CreditAccountID: 3, Amount: 250, Currency: "CNY", PendingID: 4,
			Ref: "pay_2", CreatedAt: t0.Add(4 * time.Second)},
	}
	return accts, trs
}

func scanAll(t *testing.T, s pb.Store) ([]pb.Account, []pb.Transfer) {
	t.Helper()
	var as []pb.Account
	var ts []pb.Transfer
	err := s.ScanLedger(t.Context(), func(a *pb.Account) error {
		if len(ts) > 0 {
			return fmt.Errorf("account %d came after a transfer", a.ID)
		}
		as = append(as, *a)
		return nil
	}, func(x *pb.Transfer) error {
		ts = append(ts, *x)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanLedger: %v", err)
	}
	return as, ts
}

func testCommitTransfers(t *testing.T, s pb.Store) {
	accts, trs := ledgerFixture()
	// Two commits: the post and void reference holds of an earlier batch,
	// and a hold and its post may also share a batch (transfers 2 and 3).
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: accts, Transfers: trs[:3]}})
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Transfers: trs[3:]}})
	_, got := scanAll(t, s)
	if len(got) != len(trs) {
		t.Fatalf("ScanLedger returned %d transfers, want %d", len(got), len(trs))
	}
	for i, want := range trs {
		checkTransfer(t, fmt.Sprintf("transfer %d (kind %d) read by ScanLedger", want.ID, want.Kind), &got[i], want)
	}
	for _, id := range []int64{2, 4} {
		got, _, err := s.PendingTransfer(t.Context(), id)
		if err != nil {
			t.Fatalf("PendingTransfer(%d): %v", id, err)
		}
		checkTransfer(t, fmt.Sprintf("PendingTransfer(%d)", id), got, trs[id-1])
	}
}

func testNextIDs(t *testing.T, s pb.Store) {
	ctx := t.Context()
	if a, x, err := s.NextIDs(ctx); err != nil || a != 1 || x != 1 {
		t.Fatalf("NextIDs on an empty store = (%d, %d, %v), want (1, 1, nil)", a, x, err)
	}
	commit(t, s, &pb.Batch{
		LedgerPart: pb.LedgerPart{
			Accounts: []pb.Account{{ID: 3, Owner: "a", Currency: "CNY"}, {ID: 1, Owner: "b", Currency: "CNY"}},
			Transfers: []pb.Transfer{
				{ID: 5, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 3, Amount: 1, Currency: "CNY", Ref: "x", CreatedAt: t0},
				{ID: 2, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 3, Amount: 1, Currency: "CNY", Ref: "x", CreatedAt: t0},
			},
		},
	})
	if a, x, err := s.NextIDs(ctx); err != nil || a != 4 || x != 6 {
		t.Errorf("NextIDs after accounts {3, 1} and transfers {5, 2} = (%d, %d, %v), want (4, 6, nil)", a, x, err)
	}
	// Accounts only: the transfer ID stays.
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: []pb.Account{{ID: 3, Owner: "a", Currency: "CNY", CreditsPosted: 2}, {ID: 7, Owner: "c", Currency: "CNY"}}}})
	if a, x, err := s.NextIDs(ctx); err != nil || a != 8 || x != 6 {
		t.Errorf("NextIDs after adding account 7 = (%d, %d, %v), want (8, 6, nil)", a, x, err)
	}
}

func testPendingTransfer(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts, trs := ledgerFixture()
	// First the holds alone: both open.
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: accts, Transfers: []pb.Transfer{trs[0], trs[1]}}})
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Transfers: []pb.Transfer{trs[3]}}})
	for _, id := range []int64{2, 4} {
		got, resolved, err := s.PendingTransfer(ctx, id)
		if err != nil {
			t.Fatalf("PendingTransfer(%d) of an open hold: %v", id, err)
		}
		if resolved {
			t.Errorf("PendingTransfer(%d) of an open hold: resolved = true, want false", id)
		}
		checkTransfer(t, fmt.Sprintf("PendingTransfer(%d)", id), got, trs[id-1])
	}
	// Post hold 2: resolved; hold 4 still open.
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Transfers: []pb.Transfer{trs[2]}}})
	if _, resolved, err := s.PendingTransfer(ctx, 2); err != nil || !resolved {
		t.Errorf("PendingTransfer(2) after a post = (resolved %v, %v), want (true, nil)", resolved, err)
	}
	if _, resolved, err := s.PendingTransfer(ctx, 4); err != nil || resolved {
		t.Errorf("PendingTransfer(4) after another hold was posted = (resolved %v, %v), want (false, nil)", resolved, err)
	}
	// Void hold 4: resolved.
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Transfers: []pb.Transfer{trs[4]}}})
	got, resolved, err := s.PendingTransfer(ctx, 4)
	if err != nil || !resolved {
		t.Errorf("PendingTransfer(4) after a void = (resolved %v, %v), want (true, nil)", resolved, err)
	} else {
		checkTransfer(t, "PendingTransfer(4) after a void", got, trs[3])
	}
	// Transfers of the other kinds are not pending transfers.
	for _, id := range []int64{1, 3, 5} {
		_, _, err := s.PendingTransfer(ctx, id)
		wantNotFound(t, fmt.Sprintf("PendingTransfer(%d) of a transfer of kind %d", id, trs[id-1].Kind), err)
	}
}

func testAccountsByOwner(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts := []pb.Account{
		{ID: 1, Owner: "usr_alice", Currency: "USD", CreditsPosted: 1},
		{ID: 2, Owner: "usr_bob", Currency: "CNY", CreditsPosted: 2},
		{ID: 3, Owner: "usr_alice", Currency: "CNY", CreditsPosted: 3, Flags: pb.DebitsMustNotExceedCredits},
		{ID: 4, Owner: "usr_alice", Currency: "EUR", CreditsPosted: 4, DebitsPending: 1},
		{ID: 5, Owner: "usr_alice2", Currency: "AUD", CreditsPosted: 5},
	}
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: accts}})
	got, err := s.AccountsByOwner(ctx, "usr_alice")
	if err != nil {
		t.Fatalf("AccountsByOwner(usr_alice): %v", err)
	}
	want := []pb.Account{accts[2], accts[3], accts[0]} // CNY, EUR, USD
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AccountsByOwner(usr_alice) =\n\t%+v\nwant only usr_alice's, ordered by currency:\n\t%+v", got, want)
	}
	got, err = s.AccountsByOwner(ctx, "usr_nobody")
	if err != nil || len(got) != 0 {
		t.Errorf("AccountsByOwner(usr_nobody) = (%+v, %v), want no accounts and no error", got, err)
	}
}

func testScanLedger(t *testing.T, s pb.Store) {
	if as, ts := scanAll(t, s); len(as)+len(ts) != 0 {
		t.Errorf("ScanLedger of an empty store saw %d accounts and %d transfers", len(as), len(ts))
	}
	accts, trs := ledgerFixture()
	// Rows out of ID order, over two commits, with an account update.
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: []pb.Account{accts[2], accts[0]}, Transfers: []pb.Transfer{trs[3], trs[0]}}})
	accts[0].DebitsPosted++
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: []pb.Account{accts[1], accts[0]}, Transfers: []pb.Transfer{trs[4], trs[2], trs[1]}}})
	as, ts := scanAll(t, s)
	if len(as) != len(accts) {
		t.Fatalf("ScanLedger saw %d accounts, want %d", len(as), len(accts))
	}
	for i := range accts {
		check(t, fmt.Sprintf("ScanLedger's account #%d", i), as[i], accts[i])
	}
	if len(ts) != len(trs) {
		t.Fatalf("ScanLedger saw %d transfers, want %d", len(ts), len(trs))
	}
	for i := range trs {
		checkTransfer(t, fmt.Sprintf("ScanLedger's transfer #%d", i), &ts[i], trs[i])
	}
}

func testScanLedgerCallbackError(t *testing.T, s pb.Store) {
	ctx := t.Context()
	accts, trs := ledgerFixture()
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: accts, Transfers: trs}})
	stop := errors.New("stop here")

	var na, nt int
	err := s.ScanLedger(ctx, func(*pb.Account) error {
		na++
		if na == 2 {
			return fmt.Errorf("account callback: %w", stop)
		}
		return nil
	}, func(*pb.Transfer) error { nt++; return nil })
	if !errors.Is(err, stop) {
		t.Errorf("ScanLedger with an account callback failing = %v, want an error wrapping the callback's", err)
	}
	if na != 2 || nt != 0 {
		t.Errorf("ScanLedger with the 2nd account callback failing called accounts %d times and transfers %d times, want 2 and 0", na, nt)
	}

	na, nt = 0, 0
	err = s.ScanLedger(ctx, func(*pb.Account) error { na++; return nil }, func(*pb.Transfer) error {
		nt++
		if nt == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("ScanLedger with a transfer callback failing = %v, want the callback's error", err)
	}
	if na != len(accts) || nt != 3 {
		t.Errorf("ScanLedger with the 3rd transfer callback failing called accounts %d times and transfers %d times, want %d and 3", na, nt, len(accts))
	}

	// The store still works afterwards.
	if as, ts := scanAll(t, s); len(as) != len(accts) || len(ts) != len(trs) {
		t.Errorf("ScanLedger after stopped scans saw %d accounts and %d transfers, want %d and %d", len(as), len(ts), len(accts), len(trs))
	}
}
