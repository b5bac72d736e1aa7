package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func testCommitEmptyBatch(t *testing.T, s pb.Store) {
	commit(t, s, &pb.Batch{})
	a, x, err := s.NextIDs(t.Context())
	if err != nil || a != 1 || x != 1 {
		t.Errorf("NextIDs after an empty Commit = (%d, %d, %v), want (1, 1, nil)", a, x, err)
	}
}

// badBatch is a batch of one row of every kind; the caller adds the row
// that makes it fail.
func badBatch() *pb.Batch {
	return &pb.Batch{
		LedgerPart: pb.LedgerPart{
			Accounts: []pb.Account{
				{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: 999}, // an update of an existing row
				{ID: 10, Owner: "usr_new", Currency: "CNY", CreditsPosted: 999},
			},
			Transfers: []pb.Transfer{{ID: 10, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 10, Amount: 999, Currency: "CNY", Ref: "top_new", CreatedAt: t0}},
		},
		PaymentPart: pb.PaymentPart{
			Payments:  []pb.Payment{payment("pay_new", "usr_new", "mch_new", "", t0)},
			Refunds:   []pb.Refund{{ID: "re_new", Object: "refund", PaymentID: "pay_new", Amount: 1, Currency: "CNY", Status: "succeeded", CreatedAt: t0}},
			Topups:    []pb.Topup{{ID: "top_new", Object: "topup", UserID: "usr_new", Amount: 999, Currency: "CNY", Status: "succeeded", CreatedAt: t0}},
			Merchants: []pb.Merchant{{ID: "mch_new", Name: "New", CreatedAt: t0}},
			Agents:    []pb.Agent{{ID: "agt_new", UserID: "usr_new", Name: "New", CreatedAt: t0}},
			APIKeys:   []pb.APIKey{{Hash: sha256.Sum256([]byte("sk_new")), Principal: pb.Principal{Role: pb.RoleUser, ID: "usr_new", UserID: "usr_new"}, CreatedAt: t0}},
		},
	}
}

// seedExisting commits the rows that badBatch collides with or updates.
func seedExisting(t *testing.T, s pb.Store) {
	t.Helper()
	commit(t, s, &pb.Batch{
		LedgerPart: pb.LedgerPart{
			Accounts: []pb.Account{{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: 5}},
		},
		PaymentPart: pb.PaymentPart{
			Users:       []pb.User{{ID: "usr_old", Name: "Old", CreatedAt: t0}},
			Idempotency: []pb.IdempotencyRecord{idem("usr_old", "k", t0)},
		},
	})
}

// checkNothingOf checks that no row of badBatch (plus user usr_new and
// idempotency record usr_new/k) was written and the existing rows are as
// seedExisting left them.
func checkNothingOf(t *testing.T, s pb.Store) {
	t.Helper()
	ctx := t.Context()
	if a, err := s.AccountByID(ctx, 1); err != nil {
		t.Errorf("AccountByID(1) after the failed Commit: %v", err)
	} else if a.DebitsPosted != 5 {
		t.Errorf("account 1 has DebitsPosted %d after the failed Commit, want 5 (the failed batch's update must not apply)", a.DebitsPosted)
	}
	_, err := s.AccountByID(ctx, 10)
	wantNotFound(t, "AccountByID(10) of the failed batch", err)
	_, err = s.Account(ctx, "usr_new", "CNY")
	wantNotFound(t, "Account(usr_new, CNY) of the failed batch", err)
	_, err = s.Payment(ctx, "pay_new")
	wantNotFound(t, "Payment(pay_new) of the failed batch", err)
	_, err = s.Merchant(ctx, "mch_new")
	wantNotFound(t, "Merchant(mch_new) of the failed batch", err)
	_, err = s.Agent(ctx, "agt_new")
	wantNotFound(t, "Agent(agt_new) of the failed batch", err)
	_, err = s.User(ctx, "usr_new")
	wantNotFound(t, "User(usr_new) of the failed batch", err)
	_, err = s.Principal(ctx, sha256.Sum256([]byte("sk_new")))
	wantNotFound(t, "Principal(sk_new) of the failed batch", err)
	if u, err := s.User(ctx, "usr_old"); err != nil {
		t.Errorf("User(usr_old) after the failed Commit: %v", err)
	} else if u.Name != "Old" {
		t.Errorf("User(usr_old).Name = %q after the failed Commit, want %q", u.Name, "Old")
	}
	got := lookup(t, s, []pb.IdempotencyKey{{Caller: "usr_old", Key: "k"}, {Caller: "usr_new", Key: "k"}})
	if _, ok := got[pb.IdempotencyKey{Caller: "usr_new", Key: "k"}]; ok {
		t.Errorf("idempotency record usr_new/k of the failed batch was written")
	}
	if r, ok := got[pb.IdempotencyKey{Caller: "usr_old", Key: "k"}]; !ok {
		t.Errorf("idempotency record usr_old/k is gone after the failed Commit")
	} else {
		checkIdem(t, r, idem("usr_old", "k", t0))
	}
	if a, x, err := s.NextIDs(ctx); err != nil || a != 2 || x != 1 {
		t.Errorf("NextIDs after the failed Commit = (%d, %d, %v), want (2, 1, nil)", a, x, err)
	}
	var n int
	if err := s.ScanLedger(ctx, func(*pb.Account) error { return nil }, func(*pb.Transfer) error { n++; return nil }); err != nil {
		t.Errorf("ScanLedger after the failed Commit: %v", err)
	} else if n != 0 {
		t.Errorf("ScanLedger after the failed Commit saw %d transfers, want 0", n)
	}
}

// checkStillWorks checks that a good Commit after a failed one succeeds.
func checkStillWorks(t *testing.T, s pb.Store) {
	t.Helper()
	b := badBatch()
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatalf("a valid Commit after a failed one: %v", err)
	}
	if _, err := s.Payment(t.Context(), "pay_new"); err != nil {
		t.Errorf("Payment(pay_new) after a valid Commit that followed a failed one: %v", err)
	}
	if a, err := s.AccountByID(t.Context(), 1); err != nil || a.DebitsPosted != 999 {
		t.Errorf("AccountByID(1) after a valid Commit that followed a failed one = (%+v, %v), want DebitsPosted 999", a, err)
	}
}

func testAtomicDuplicateUser(t *testing.T, s pb.Store) {
	seedExisting(t, s)
	b := badBatch()
	b.Idempotency = []pb.IdempotencyRecord{idem("usr_new", "k", t0)}
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}, {ID: "usr_old", Name: "Impostor", CreatedAt: t0}}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err == nil {
		t.Fatal("Commit of a batch with the ID of an existing user succeeded, want an error")
	}
	checkNothingOf(t, s)
	checkStillWorks(t, s)
}

func testAtomicDuplicateIdempotency(t *testing.T, s pb.Store) {
	seedExisting(t, s)
	b := badBatch()
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}}
	again := idem("usr_old", "k", t0.Add(time.Hour))
	again.Body = []byte(`{"second":"answer"}`)
	b.Idempotency = []pb.IdempotencyRecord{idem("usr_new", "k", t0), again}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err == nil {
		t.Fatal("Commit of a batch with an idempotency (caller, key) already stored succeeded, want an error")
	}
	checkNothingOf(t, s)
	checkStillWorks(t, s)
}

func testAtomicDuplicateInBatch(t *testing.T, s pb.Store) {
	seedExisting(t, s)
	b := badBatch()
	b.Idempotency = []pb.IdempotencyRecord{idem("usr_new", "k", t0)}
	b.Users = []pb.User{{ID: "usr_new", Name: "New", CreatedAt: t0}, {ID: "usr_new", Name: "Twice", CreatedAt: t0}}
	asWriter(t, s, b)
	if err := s.Commit(t.Context(), b); err == nil {
		t.Fatal("Commit of a batch with one user ID twice succeeded, want an error")
	}
	checkNothingOf(t, s)
	checkStillWorks(t, s)
}

// countdown is a context that cancels itself when it has been asked for
// Done or Err the n-th time: a Commit canceled at every point it looks.
type countdown struct {
	context.Context
	cancel context.CancelFunc
	n      atomic.Int64
	fired  atomic.Bool
}

func newCountdown(parent context.Context, n int64) *countdown {
	ctx, cancel := context.WithCancel(parent)
	c := &countdown{Context: ctx, cancel: cancel}
	c.n.Store(n)
	return c
}

func (c *countdown) tick() {
	if c.n.Add(-1) == 0 {
		c.fired.Store(true)
		c.cancel()
		// Let goroutines watching Done see the cancellation before the
		// caller goes on, as a slow scheduler might.
		time.Sleep(2 * time.Millisecond)
	}
}
func (c *countdown) Done() <-chan struct{} { c.tick(); return c.Context.Done() }
func (c *countdown) Err() error            { c.tick(); return c.Context.Err() }

// testCommitCanceled cancels Commit's context at each point in turn: the
// batch is written whole or not at all, an error means nothing was written
// (or, at worst, that the acknowledgement was lost), success means all was,
// and the store keeps working.
func testCommitCanceled(t *testing.T, s pb.Store) {
	ctx := t.Context()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	b := &pb.Batch{PaymentPart: pb.PaymentPart{Users: []pb.User{{ID: "usr_pre", Name: "Pre", CreatedAt: t0}}}}
	if err := s.Commit(canceled, b); err == nil {
		if _, err := s.User(ctx, "usr_pre"); err != nil {
			t.Errorf("Commit with a canceled context succeeded but its user is not there: %v", err)
		}
	} else if _, err := s.User(ctx, "usr_pre"); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Errorf("Commit with a canceled context failed but User(usr_pre) = %v, want not found", err)
	}

	for k := int64(1); k <= 500; k++ {
		u, m := fmt.Sprintf("usr_%03d", k), fmt.Sprintf("mch_%03d", k)
		acct := pb.Account{ID: k, Owner: u, Currency: "CNY", CreditsPosted: k}
		b := &pb.Batch{
			LedgerPart: pb.LedgerPart{
				Accounts:       []pb.Account{acct},
				AccountChanges: []pb.AccountChange{{Created: true, CreditsPosted: k}},
			},
			PaymentPart: pb.PaymentPart{
				Users:       []pb.User{{ID: u, Name: "U", CreatedAt: t0}},
				Merchants:   []pb.Merchant{{ID: m, Name: "M", CreatedAt: t0}},
				Idempotency: []pb.IdempotencyRecord{idem(u, "k", t0)},
			},
		}
		c := newCountdown(ctx, k)
		err := s.Commit(c, b)
		_, uerr := s.User(ctx, u)
		_, merr := s.Merchant(ctx, m)
		_, aerr := s.AccountByID(ctx, k)
		recs, lerr := s.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: u, Key: "k"}})
		if lerr != nil {
			t.Fatalf("LookupIdempotency after Commit canceled at point %d: %v", k, lerr)
		}
		seen := []bool{uerr == nil, merr == nil, aerr == nil, len(recs) == 1}
		all, none := !slices.Contains(seen, false), !slices.Contains(seen, true)
		switch {
		case !all && !none:
			t.Fatalf("Commit canceled at point %d (error %v) left part of its batch: user, merchant, account, idempotency record visible = %v", k, err, seen)
		case err == nil && !all:
			t.Fatalf("Commit canceled at point %d returned nil but wrote nothing", k)
		case err != nil && all:
			t.Logf("Commit canceled at point %d returned %v but its batch was written", k, err)
		}
		if none {
			// The same batch again, not canceled, must now succeed.
			asWriter(t, s, b)
			if err := s.Commit(ctx, b); err != nil {
				t.Fatalf("Commit after one canceled at point %d: %v", k, err)
			}
		}
		if !c.fired.Load() {
			return // Commit finished before looking at its context k times
		}
	}
	t.Fatal("Commit looked at its context more than 500 times")
}

// testConcurrentReads commits batches from one goroutine (as the single
// ledger writer does) while others read. Every batch i writes user, merchant,
// payment and idempotency record i, account i+1 and transfer i, so readers
// can check that a batch is seen whole or not at all, and that what Commit
// acknowledged is visible.
func testConcurrentReads(t *testing.T, s pb.Store) {
	ctx := t.Context()
	commit(t, s, &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: []pb.Account{{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY"}}}})
	const batches, readers = 40, 4
	name := func(prefix string, i int64) string { return fmt.Sprintf("%s%04d", prefix, i) }
	var acked atomic.Int64 // the last batch whose Commit returned
	var stop atomic.Bool
	var wg sync.WaitGroup

	wg.Go(func() {
		defer stop.Store(true)
		for i := int64(1); i <= batches; i++ {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			b := &pb.Batch{
				LedgerPart: pb.LedgerPart{
					Accounts: []pb.Account{
						{ID: 1, Owner: pb.OwnerFunding, Currency: "CNY", DebitsPosted: i},
						{ID: i + 1, Owner: name("usr_", i), Currency: "CNY", CreditsPosted: 1},
					},
					Transfers: []pb.Transfer{{ID: i, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: i + 1, Amount: 1, Currency: "CNY", Ref: name("top_", i), CreatedAt: at}},
				},
				PaymentPart: pb.PaymentPart{
					Users:       []pb.User{{ID: name("usr_", i), Name: "u", CreatedAt: at}},
					Merchants:   []pb.Merchant{{ID: name("mch_", i), Name: "m", CreatedAt: at}},
					Payments:    []pb.Payment{payment(name("pay_", i), name("usr_", i), name("mch_", i), "", at)},
					Idempotency: []pb.IdempotencyRecord{idem(name("usr_", i), "k", at)},
				},
			}
			asWriter(t, s, b)
			if err := s.Commit(ctx, b); err != nil {
				t.Errorf("Commit of batch %d while reading concurrently: %v", i, err)
				return
			}
			acked.Store(i)
		}
	})

	read := func() error {
		i := acked.Load()
		if i > 0 {
			// Acknowledged: every row of batch i is visible.
			if _, err := s.User(ctx, name("usr_", i)); err != nil {
				return fmt.Errorf("the user of acknowledged batch %d: %w", i, err)
			}
			if _, err := s.Payment(ctx, name("pay_", i)); err != nil {
				return fmt.Errorf("the payment of acknowledged batch %d: %w", i, err)
			}
			if _, err := s.AccountByID(ctx, i+1); err != nil {
				return fmt.Errorf("AccountByID of acknowledged batch %d: %w", i, err)
			}
			if r := lookupErr(ctx, s, name("usr_", i)); r != nil {
				return fmt.Errorf("LookupIdempotency of acknowledged batch %d: %w", i, r)
			}
			if _, _, err := s.ListPayments(ctx, pb.PaymentFilter{PayerID: name("usr_", i)}); err != nil {
				return fmt.Errorf("ListPayments: %w", err)
			}
		}
		// Batch i+1 may be committing: if one of its rows is visible, all are.
		if _, err := s.Merchant(ctx, name("mch_", i+1)); err == nil {
			if _, err := s.User(ctx, name("usr_", i+1)); err != nil {
				return fmt.Errorf("merchant of batch %d visible but its user is not: %w", i+1, err)
			}
			if _, err := s.Payment(ctx, name("pay_", i+1)); err != nil {
				return fmt.Errorf("merchant of batch %d visible but its payment is not: %w", i+1, err)
			}
		} else if pb.ErrorCode(err) != pb.ErrNotFound {
			return fmt.Errorf("reading the merchant: %w", err)
		}
		// ScanLedger reads one snapshot: n+1 accounts with n transfers, and
		// the funding account's balance of that same batch.
		var na, nt, funding int64
		err := s.ScanLedger(ctx, func(a *pb.Account) error {
			na++
			if a.ID == 1 {
				funding = a.DebitsPosted
			}
			return nil
		}, func(*pb.Transfer) error { nt++; return nil })
		if err != nil {
			return fmt.Errorf("ScanLedger: %w", err)
		}
		if na != nt+1 || funding != nt || nt < i {
			return fmt.Errorf("ScanLedger saw %d accounts, %d transfers and a funding balance of %d after batch %d was acknowledged: not one consistent snapshot", na, nt, funding, i)
		}
		if _, _, err := s.NextIDs(ctx); err != nil {
			return fmt.Errorf("NextIDs: %w", err)
		}
		if _, err := s.AccountsByOwner(ctx, pb.OwnerFunding); err != nil {
			return fmt.Errorf("AccountsByOwner: %w", err)
		}
		return nil
	}
	for range readers {
		wg.Go(func() {
			for !stop.Load() {
				if err := read(); err != nil {
					t.Errorf("concurrent read: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := acked.Load(); got != batches {
		t.Fatalf("only %d of %d batches were committed", got, batches)
	}
	if as, ts := scanAll(t, s); len(as) != batches+1 || len(ts) != batches {
		t.Errorf("after all commits ScanLedger saw %d accounts and %d transfers, want %d and %d", len(as), len(ts), batches+1, batches)
	}
}

func lookupErr(ctx context.Context, s pb.Store, caller string) error {
	recs, err := s.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: caller, Key: "k"}})
	if err != nil {
		return err
	}
	if len(recs) != 1 {
		return fmt.Errorf("%d records for %s/k, want 1", len(recs), caller)
	}
	return nil
}
