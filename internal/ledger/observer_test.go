package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/sqlite"
)

// An observer sees each log entry in the entry's Tx; what it adds with
// ledger.Add is undone with the entry, and its error fails the entry.
func TestObserversWriteWithTheEntry(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	users := func(b *pb.Batch) *[]pb.User { return &b.Users }
	refuse := errors.New("refused")
	observe := func(tx *ledger.Tx, ev pb.LogEvent) error {
		if ev.Type == "refuse" {
			return refuse
		}
		ledger.Add(tx, users, pb.User{ID: "usr_" + ev.Subject, Name: ev.Type})
		return nil
	}
	w, err := ledger.New(ctx, ledger.Config{Store: st, PanicOnInvariant: true, Observers: []ledger.Observer{observe}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); st.Close() })
	actor := pb.Actor{Role: pb.RoleOperator, ID: "op"}
	_, err = w.Submit(ctx, func(tx *ledger.Tx) (any, error) {
		if err := tx.Log(pb.LogEvent{Type: "kept", Subject: "a", Actor: actor}); err != nil {
			return nil, err
		}
		if n := len(ledger.Added(tx, users)); n != 1 {
			t.Errorf("after one entry the batch has %d users, want 1", n)
		}
		failed := tx.Atomic(func() error {
			if err := tx.Log(pb.LogEvent{Type: "undone", Subject: "b", Actor: actor}); err != nil {
				return err
			}
			return errors.New("fail the block")
		})
		if failed == nil {
			t.Error("the block did not fail")
		}
		if err := tx.Log(pb.LogEvent{Type: "refuse", Subject: "c", Actor: actor}); !errors.Is(err, refuse) {
			t.Errorf("an observer's error: Log answered %v, want it wrapped", err)
		}
		if recs := ledger.Added(tx, func(b *pb.Batch) *[]pb.LogRecord { return &b.Log }); len(recs) != 1 || recs[0].Subject != "a" {
			t.Errorf("the batch's log after an undone block and a refused entry: %d entries, want only a's", len(recs))
		}
		got := ledger.Added(tx, users)
		if len(got) != 1 || got[0].ID != "usr_a" {
			t.Errorf("the batch's users after an undone block: %+v, want only usr_a", got)
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// countingStore counts Payment reads.
type countingStore struct {
	*sqlite.Store
	payments int
}

func (c *countingStore) Payment(ctx context.Context, id string) (*pb.Payment, error) {
	c.payments++
	return c.Store.Payment(ctx, id)
}

// An observer of a new payment's entries, logged before the payment is
// put (an auto-captured payment's capture), finds no payment, as the store
// would say, without a read of the store inside the writer; once put, it
// finds it as put.
func TestObserversOfANewPaymentReadNothing(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: sq}
	var seen []string
	observe := func(tx *ledger.Tx, ev pb.LogEvent) error {
		p, err := tx.Payment(ev.Subject)
		switch {
		case err == nil:
			seen = append(seen, ev.Type+" found "+string(p.Status))
		case pb.ErrorCode(err) == pb.ErrNotFound:
			seen = append(seen, ev.Type+" not found")
		default:
			return err
		}
		return nil
	}
	w, err := ledger.New(ctx, ledger.Config{Store: st, PanicOnInvariant: true, Observers: []ledger.Observer{observe}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); sq.Close() })
	actor := pb.Actor{Role: pb.RoleOperator, ID: "op"}
	_, err = w.Submit(ctx, func(tx *ledger.Tx) (any, error) {
		p := pb.Payment{ID: "pay_new", Status: pb.StatusCaptured, Amount: 1, Currency: "USD", Metadata: map[string]string{}}
		for _, typ := range []string{"created", "captured"} {
			if err := tx.LogPayment(&p, pb.LogEvent{Type: typ, Actor: actor}); err != nil {
				return nil, err
			}
		}
		tx.PutPayment(p)
		return nil, tx.LogPayment(&p, pb.LogEvent{Type: "noted", Actor: actor})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"created not found", "captured not found", "noted found captured"}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] || seen[2] != want[2] {
		t.Fatalf("the observer saw %q, want %q", seen, want)
	}
	if st.payments != 0 {
		t.Fatalf("the writer read the store for payments %d times, want none", st.payments)
	}
}
