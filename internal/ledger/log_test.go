package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/tlog"
)

// BenchmarkPaymentLog measures what the transparency log costs the payment
// path inside the ledger batch: each operation is a payment as the service
// makes one (a hold, its capture, the payment row) with ("log") or without
// ("nolog") its three entries (created, authorized, captured), with data
// of the shape and size the service logs (structs, as LogEvent.Data's
// contract asks), appended to the tree in the same commit. Compare
// payments/s of the two sub-benchmarks of one run.
func BenchmarkPaymentLog(b *testing.B) {
	for _, withLog := range []bool{false, true} {
		name := "nolog"
		if withLog {
			name = "log"
		}
		b.Run(name, func(b *testing.B) {
			w, _ := newWriter(b)
			ctx := context.Background()
			const clients = 512
			var n atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			expires := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
			data := []any{
				struct {
					AgentID       string            `json:"agent_id"`
					Amount        int64             `json:"amount"`
					CaptureMethod string            `json:"capture_method"`
					Currency      string            `json:"currency"`
					Description   string            `json:"description"`
					MerchantID    string            `json:"merchant_id"`
					Metadata      map[string]string `json:"metadata"`
					PayerID       string            `json:"payer_id"`
				}{"agt_01m8e3q8m0172kxsnxv8qwc33x", 1250, "automatic", "USD", "breakfast: one flat white and a croissant",
					"mch_01m8e3q8m0172kxsnxv8qwc33x", map[string]string{"order": "A-10293", "table": "7"}, "usr_01m8e3q8m0172kxsnxv8qwc33x"},
				struct {
					Amount    int64     `json:"amount"`
					Basis     string    `json:"basis"`
					ExpiresAt time.Time `json:"expires_at"`
				}{1250, "mandate", expires},
				struct {
					Amount   int64 `json:"amount"`
					Fee      int64 `json:"fee"`
					Released int64 `json:"released"`
				}{1250, 0, 0},
			}
			actor := pb.Actor{Role: pb.RoleAgent, ID: "agt_01m8e3q8m0172kxsnxv8qwc33x", Assurance: pb.AssuranceSigned}
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; n.Add(1) <= int64(b.N); i++ {
						payer, merchant := fmt.Sprintf("usr_%d", c), fmt.Sprintf("mch_%d", c%16)
						_, err := w.Submit(ctx, func(tx *ledger.Tx) (any, error) {
							p := pb.Payment{ID: pb.NewID(pb.PrefixPayment, tx.Now()), Object: "payment", Amount: 1250, Currency: "USD",
								MerchantID: merchant, PayerID: payer, Metadata: map[string]string{}, CreatedAt: tx.Now()}
							from, err := tx.EnsureAccount(payer, "USD", 0)
							if err != nil {
								return nil, err
							}
							to, err := tx.EnsureAccount(merchant, "USD", 0)
							if err != nil {
								return nil, err
							}
							if p.HoldID, err = tx.Hold(from, to, p.Amount, tx.Now().Add(time.Hour), p.ID); err != nil {
								return nil, err
							}
							if _, err := tx.Post(p.HoldID, p.Amount, p.ID); err != nil {
								return nil, err
							}
							p.Status, p.AmountCaptured = pb.StatusCaptured, p.Amount
							if withLog {
								for i, typ := range []string{pb.LogPaymentCreated, pb.LogPaymentAuthorized, pb.LogPaymentCaptured} {
									if err := tx.LogPayment(&p, pb.LogEvent{Type: typ, Actor: actor, Data: data[i]}); err != nil {
										return nil, err
									}
								}
							} else {
								p.LogHead = tlog.LeafHash([]byte(p.ID)) // PutPayment wants a head
								tx.SetLogHeadForTest(p.ID, p.LogHead)
							}
							tx.PutPayment(p)
							return nil, nil
						})
						if err != nil {
							failed.CompareAndSwap(nil, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "payments/s")
		})
	}
}

// BenchmarkProofs measures proof generation from a store's hashes, in a log
// of 100,000 entries: an inclusion proof, a consistency proof, and the
// tree's root (what a trace and a checkpoint need).
func BenchmarkProofs(b *testing.B) {
	w, st := newWriter(b)
	ctx := context.Background()
	const size = 100_000
	for lo := 0; lo < size; lo += 5000 {
		if _, err := w.Submit(ctx, func(tx *ledger.Tx) (any, error) {
			for i := lo; i < lo+5000; i++ {
				if err := tx.Log(pb.LogEvent{Type: pb.LogMandateGranted, Subject: fmt.Sprintf("mdt_%d", i), Actor: pb.SystemActor}); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	hr := ledger.StoredHashes(ctx, st)
	b.Run("inclusion", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := tlog.ProveInclusion(int64(i*7919%size), size, hr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := tlog.ProveConsistency(int64(1+i*7919%(size-1)), size, hr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("root", func(b *testing.B) {
		for b.Loop() {
			if _, err := tlog.TreeHash(size, hr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPaymentNeedsItsLatestEntry: a payment is put only with the leaf of
// its latest entry in the batch as its head; an entry undone with a failed
// Atomic does not count, and the operation fails whole.
func TestPaymentNeedsItsLatestEntry(t *testing.T) {
	t.Parallel()
	w, st := newWriter(t)
	ctx := context.Background()
	ev := pb.LogEvent{Type: pb.LogPaymentCreated, Actor: pb.SystemActor}
	for name, op := range map[string]ledger.Op{
		"no entry": func(tx *ledger.Tx) (any, error) {
			p := pb.Payment{ID: "pay_a", LogHead: tlog.LeafHash([]byte("made up"))}
			tx.PutPayment(p)
			return nil, nil
		},
		"an undone entry": func(tx *ledger.Tx) (any, error) {
			p := pb.Payment{ID: "pay_b"}
			tx.Atomic(func() error {
				if err := tx.LogPayment(&p, ev); err != nil {
					return err
				}
				return fmt.Errorf("changed my mind")
			})
			tx.PutPayment(p)
			return nil, nil
		},
		"an older entry": func(tx *ledger.Tx) (any, error) {
			p := pb.Payment{ID: "pay_c"}
			if err := tx.LogPayment(&p, ev); err != nil {
				return nil, err
			}
			q := p
			if err := tx.LogPayment(&q, ev); err != nil {
				return nil, err
			}
			tx.PutPayment(p)
			return nil, nil
		},
	} {
		if _, err := w.Submit(ctx, op); err == nil || !strings.Contains(err.Error(), "latest log entry") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if es, err := st.LogEntries(ctx, 0, 10); err != nil || len(es) != 0 {
		t.Fatalf("failed operations left %d entries (%v)", len(es), err)
	}
	if _, err := w.Submit(ctx, func(tx *ledger.Tx) (any, error) {
		p := pb.Payment{ID: "pay_d", Object: "payment", Metadata: map[string]string{}, Status: pb.StatusDeclined, Currency: "USD"}
		if err := tx.LogPayment(&p, ev); err != nil {
			return nil, err
		}
		tx.PutPayment(p)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}
