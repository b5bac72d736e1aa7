package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/storetest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// flakyStore fails Commit while fail is set, and refuses the next
// conflicts commits as if another process had changed their rows.
type flakyStore struct {
	pb.Store
	fail      atomic.Bool
	conflicts atomic.Int32
}

func (f *flakyStore) Commit(ctx context.Context, b *pb.Batch) error {
	if f.fail.Load() {
		return errors.New("disk on fire")
	}
	if f.conflicts.Add(-1) >= 0 {
		return fmt.Errorf("test: %w", pb.ErrStoreConflict)
	}
	return f.Store.Commit(ctx, b)
}

// flakyShared is a flakyStore over a shared store, so that the writer runs
// in its shared mode.
type flakyShared struct {
	*flakyStore
	shared pb.SharedStore
}

func (f flakyShared) ReserveIDs(ctx context.Context) (int64, int64, error) {
	return f.shared.ReserveIDs(ctx)
}

func open(t *testing.T, path string, c pb.Clock, strict bool) (*ledger.Writer, *flakyStore) {
	t.Helper()
	var st pb.Store
	var err error
	if db := storetest.Database(t, path); db != "" {
		st, err = postgres.Open(context.Background(), db)
	} else {
		st, err = sqlite.Open(context.Background(), path)
	}
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakyStore{Store: st}
	var wrapped pb.Store = fs
	if sh, ok := st.(pb.SharedStore); ok {
		wrapped = flakyShared{fs, sh}
	}
	w, err := ledger.New(context.Background(), ledger.Config{Store: wrapped, Clock: c, PanicOnInvariant: strict})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); st.Close() })
	return w, fs
}

func do(t *testing.T, w *ledger.Writer, op ledger.Op) (any, error) {
	t.Helper()
	return w.Submit(context.Background(), op)
}

// fund gives owner amount from the funding account.
func fund(t *testing.T, w *ledger.Writer, owner string, amount int64) {
	t.Helper()
	if _, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		src, _ := tx.EnsureAccount(pb.OwnerFunding, "USD", 0)
		dst, _ := tx.EnsureAccount(owner, "USD", pb.DebitsMustNotExceedCredits)
		return tx.Transfer(src, dst, amount, "fund")
	}); err != nil {
		t.Fatal(err)
	}
}

func balance(t *testing.T, st pb.Store, owner string) pb.Account {
	t.Helper()
	a, err := st.Account(context.Background(), owner, "USD")
	if err != nil {
		t.Fatal(err)
	}
	return *a
}

func verify(t *testing.T, st pb.Store) {
	t.Helper()
	r, err := ledger.Verify(context.Background(), st)
	if err != nil || !r.OK {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

// TestAtomicIsAllOrNothing: a failed Atomic undoes its transfers; what the
// op did outside it stays.
func TestAtomicIsAllOrNothing(t *testing.T) {
	t.Parallel()
	w, st := open(t, filepath.Join(t.TempDir(), "l.db"), nil, true)
	fund(t, w, "a", 100)
	_, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		a, _ := tx.Account("a", "USD")
		b, _ := tx.EnsureAccount("b", "USD", pb.DebitsMustNotExceedCredits)
		c, _ := tx.EnsureAccount("c", "USD", pb.DebitsMustNotExceedCredits)
		if _, err := tx.Transfer(a, b, 30, "kept"); err != nil {
			return nil, err
		}
		err := tx.Atomic(func() error {
			if _, err := tx.Transfer(a, c, 50, "linked-1"); err != nil {
				return err
			}
			_, err := tx.Transfer(b, c, 31, "linked-2") // b holds only 30
			return err
		})
		if !errors.Is(err, ledger.ErrInsufficientFunds) {
			t.Errorf("linked transfer error %v; want insufficient funds", err)
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := balance(t, st, "a"), balance(t, st, "b"); a.Available() != 70 || b.Available() != 30 {
		t.Fatalf("a %d, b %d; want 70 and 30", a.Available(), b.Available())
	}
	if c := balance(t, st, "c"); c.CreditsPosted != 0 {
		t.Fatalf("c received %d from a failed linked set", c.CreditsPosted)
	}
	verify(t, st)
}

// TestHoldsResolveOnce: a hold posts at most once, for at most its amount,
// voids at most once, even across a restart, and cannot post after expiry.
func TestHoldsResolveOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "l.db")
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	w, st := open(t, path, clk, true)
	fund(t, w, "payer", 1000)
	hold := func(amount int64, ttl time.Duration) int64 {
		v, err := do(t, w, func(tx *ledger.Tx) (any, error) {
			p, _ := tx.Account("payer", "USD")
			m, _ := tx.EnsureAccount("merchant", "USD", pb.DebitsMustNotExceedCredits)
			return tx.Hold(p, m, amount, tx.Now().Add(ttl), "h")
		})
		if err != nil {
			t.Fatal(err)
		}
		return v.(int64)
	}
	post := func(w *ledger.Writer, id, amount int64) error {
		_, err := do(t, w, func(tx *ledger.Tx) (any, error) { return tx.Post(id, amount, "p") })
		return err
	}
	void := func(w *ledger.Writer, id int64) error {
		_, err := do(t, w, func(tx *ledger.Tx) (any, error) { return tx.Void(id, "v") })
		return err
	}
	h1 := hold(600, time.Hour)
	if p := balance(t, st, "payer"); p.Available() != 400 || p.DebitsPending != 600 {
		t.Fatalf("hold not counted: %+v", p)
	}
	if _, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		p, _ := tx.Account("payer", "USD")
		m, _ := tx.Account("merchant", "USD")
		return tx.Hold(p, m, 401, tx.Now().Add(time.Hour), "h")
	}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("hold over available: %v", err)
	}
	if _, err := do(t, w, func(tx *ledger.Tx) (any, error) { // a merchant's account is never held (migration 0023)
		mch, err := tx.EnsureAccount(pb.PrefixMerchant+"seller", "USD", 0)
		if err != nil {
			return nil, err
		}
		p, _ := tx.Account("payer", "USD")
		return tx.Hold(mch, p, 5, tx.Now().Add(time.Hour), "h")
	}); !errors.Is(err, ledger.ErrMerchantHold) {
		t.Fatalf("hold on a merchant's account: %v", err)
	}
	if err := post(w, h1, 601); pb.ErrorCode(err) != pb.ErrAmountTooLarge {
		t.Fatalf("post over hold: %v", err)
	}
	if err := post(w, h1, 250); err != nil {
		t.Fatal(err)
	}
	if p := balance(t, st, "payer"); p.Available() != 750 || p.DebitsPending != 0 {
		t.Fatalf("after partial post: %+v", p)
	}
	if err := post(w, h1, 1); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("second post: %v", err)
	}
	if err := void(w, h1); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("void after post: %v", err)
	}
	h2 := hold(100, time.Minute)
	clk.Advance(time.Minute)
	if err := post(w, h2, 100); !errors.Is(err, ledger.ErrHoldExpired) {
		t.Fatalf("post after expiry: %v", err)
	}
	if err := void(w, h2); err != nil {
		t.Fatal(err)
	}
	// A new writer over the same store knows both holds are resolved.
	w.Close()
	w2, _ := open(t, path, clk, true)
	if err := post(w2, h1, 1); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("post after restart: %v", err)
	}
	if err := void(w2, h2); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("void after restart: %v", err)
	}
	verify(t, st)
}

// TestCommitFailure: when a commit fails, its requests fail, nothing of
// them is in memory afterwards, and the next batches work from the store.
func TestCommitFailure(t *testing.T) {
	t.Parallel()
	w, st := open(t, filepath.Join(t.TempDir(), "l.db"), nil, true)
	fund(t, w, "a", 100)
	st.fail.Store(true)
	if _, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		a, _ := tx.Account("a", "USD")
		b, _ := tx.EnsureAccount("b", "USD", 0)
		return tx.Transfer(a, b, 100, "lost")
	}); err == nil {
		t.Fatal("a failed commit was acknowledged")
	}
	st.fail.Store(false)
	// Had the failed transfer stayed in memory, a's 100 would look spent.
	if _, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		a, _ := tx.Account("a", "USD")
		b, _ := tx.EnsureAccount("b", "USD", 0)
		return tx.Transfer(a, b, 100, "retry")
	}); err != nil {
		t.Fatalf("after a failed commit: %v", err)
	}
	if a := balance(t, st, "a"); a.Available() != 0 || a.DebitsPosted != 100 {
		t.Fatalf("a: %+v", a)
	}
	verify(t, st)
}

// TestBrokenInvariantStopsTheWriter: a batch that would break the zero sum
// is not written, and the writer refuses everything after it.
func TestBrokenInvariantStopsTheWriter(t *testing.T) {
	t.Parallel()
	w, st := open(t, filepath.Join(t.TempDir(), "l.db"), nil, false)
	fund(t, w, "a", 100)
	_, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		a, _ := tx.Account("a", "USD")
		b, _ := tx.EnsureAccount("b", "USD", 0)
		if _, err := tx.Transfer(a, b, 10, "x"); err != nil {
			return nil, err
		}
		b.CreditsPosted += 5 // a bug: money from nowhere
		return nil, nil
	})
	if pb.ErrorCode(err) != pb.ErrLedgerStopped || w.Err() == nil {
		t.Fatalf("broken invariant: %v, writer err %v", err, w.Err())
	}
	if _, err := do(t, w, func(tx *ledger.Tx) (any, error) { return nil, nil }); pb.ErrorCode(err) != pb.ErrLedgerStopped {
		t.Fatalf("writer still accepts work: %v", err)
	}
	if a := balance(t, st, "a"); a.Available() != 100 {
		t.Fatalf("the broken batch was written: %+v", a)
	}
	verify(t, st)
}

// TestOverflowIsRefused: balances never wrap around.
func TestOverflowIsRefused(t *testing.T) {
	t.Parallel()
	w, st := open(t, filepath.Join(t.TempDir(), "l.db"), nil, true)
	_, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		src, _ := tx.EnsureAccount(pb.OwnerFunding, "USD", 0)
		dst, _ := tx.EnsureAccount("whale", "USD", 0)
		for range 10_000 { // 9223 transfers of 10^15 reach int64's limit
			if _, err := tx.Transfer(src, dst, pb.MaxAmount, "big"); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if pb.ErrorCode(err) != pb.ErrAmountTooLarge {
		t.Fatalf("overflow: %v", err)
	}
	verify(t, st)
}

// TestVerifyDetectsTampering: a stored balance that disagrees with the
// transfers is reported.
func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	w, st := open(t, filepath.Join(t.TempDir(), "l.db"), nil, true)
	fund(t, w, "a", 100)
	a := balance(t, st, "a")
	a.CreditsPosted += 1
	if err := st.Commit(context.Background(), &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: []pb.Account{a}, AccountChanges: []pb.AccountChange{{CreditsPosted: 1}}}}); err != nil {
		t.Fatal(err)
	}
	r, err := ledger.Verify(context.Background(), st)
	if err != nil || r.OK || len(r.Problems) == 0 {
		t.Fatalf("tampered ledger verified: %+v %v", r, err)
	}
}

// TestPanickingOpIsUndone: an op that panics fails alone, its effects
// undone; the rest of its batch and the writer carry on.
func TestPanickingOpIsUndone(t *testing.T) {
	t.Parallel()
	w, st := open(t, filepath.Join(t.TempDir(), "l.db"), nil, true)
	fund(t, w, "a", 100)
	_, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		a, _ := tx.Account("a", "USD")
		b, _ := tx.EnsureAccount("b", "USD", 0)
		if _, err := tx.Transfer(a, b, 60, "x"); err != nil {
			return nil, err
		}
		panic("bug")
	})
	if err == nil {
		t.Fatal("a panicking op succeeded")
	}
	fund(t, w, "a", 1)
	if a := balance(t, st, "a"); a.Available() != 101 {
		t.Fatalf("a holds %d; the panicking op's transfer stayed", a.Available())
	}
	verify(t, st)
}

// TestRefusedBatchIsRecomputed: a commit that the store refuses because
// another writer changed its rows is run again on fresh state, and its
// effects land exactly once.
func TestRefusedBatchIsRecomputed(t *testing.T) {
	t.Parallel()
	w, st := open(t, filepath.Join(t.TempDir(), "l.db"), nil, true)
	fund(t, w, "a", 100)
	st.conflicts.Store(3)
	runs := 0
	if _, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		runs++
		a, _ := tx.Account("a", "USD")
		b, _ := tx.EnsureAccount("b", "USD", 0)
		return tx.Transfer(a, b, 40, "x")
	}); err != nil {
		t.Fatalf("a refused batch was not recomputed: %v", err)
	}
	if runs != 4 {
		t.Fatalf("the op ran %d times; want 4 (three refusals)", runs)
	}
	if a := balance(t, st, "a"); a.Available() != 60 {
		t.Fatalf("a holds %d; want 60 (the transfer once)", a.Available())
	}
	// Past the attempt limit the caller gets a retryable error, and nothing
	// of the op was written.
	st.conflicts.Store(100)
	_, err := do(t, w, func(tx *ledger.Tx) (any, error) {
		a, _ := tx.Account("a", "USD")
		b, _ := tx.Account("b", "USD")
		return tx.Transfer(a, b, 10, "y")
	})
	if pb.ErrorCode(err) != pb.ErrUnavailable {
		t.Fatalf("after endless refusals: %v; want code unavailable", err)
	}
	st.conflicts.Store(0)
	if a := balance(t, st, "a"); a.Available() != 60 {
		t.Fatalf("a holds %d after a refused transfer; want 60", a.Available())
	}
	verify(t, st)
}

// TestMandateUsage: reservations persist, never pass their caps, and are
// undone with a failed Atomic.
func TestMandateUsage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "l.db")
	w, st := open(t, path, nil, true)
	adjust := func(w *ledger.Writer, spent, payments int64, fail bool) error {
		_, err := do(t, w, func(tx *ledger.Tx) (any, error) {
			u, err := tx.Usage("mdt_1", "2026-W48", 10, 3)
			if err != nil {
				return nil, err
			}
			return nil, tx.Atomic(func() error {
				if err := tx.AdjustUsage(u, spent, payments); err != nil {
					return err
				}
				if fail {
					return errors.New("the hold failed")
				}
				return nil
			})
		})
		return err
	}
	if err := adjust(w, 3, 1, false); err != nil {
		t.Fatal(err)
	}
	if err := adjust(w, 5, 1, true); err == nil {
		t.Fatal("the failed Atomic reported success")
	}
	if err := adjust(w, 8, 1, false); !errors.Is(err, ledger.ErrUsageCap) {
		t.Fatalf("past the budget: %v", err)
	}
	if err := adjust(w, 7, 1, false); err != nil {
		t.Fatalf("up to the budget: %v", err)
	}
	if err := adjust(w, -2, 1, false); err != nil {
		t.Fatalf("giving budget back: %v", err)
	}
	if err := adjust(w, 1, 1, false); !errors.Is(err, ledger.ErrUsageCap) {
		t.Fatalf("past the payment cap: %v", err)
	}
	w.Close()
	got, err := st.MandateUsage(context.Background(), "mdt_1", "2026-W48")
	if err != nil || got.Spent != 8 || got.Payments != 3 {
		t.Fatalf("stored usage %+v %v; want 8 spent in 3 payments", got, err)
	}
}
