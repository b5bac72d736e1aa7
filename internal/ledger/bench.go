package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/paybound/paybound"
)

// BenchConfig describes a load run against a Writer (paybound bench ledger
// and BenchmarkWriter use it).
type BenchConfig struct {
	// Hot sends every transfer from one wallet (which must not go negative);
	// otherwise debit and credit accounts are drawn uniformly from Accounts.
	Hot      bool
	Accounts int           // accounts in play (default 10,000)
	Clients  int           // concurrent submitters (default 2,000)
	Duration time.Duration // how long to submit (default 5s)
	// Transfers stops the run after this many transfers, if > 0.
	Transfers int64
}

// BenchResult is the outcome of one run. Latency is from Do's call to its
// return, so it includes queueing and the durable commit.
type BenchResult struct {
	Transfers       int64
	Seconds         float64
	TransfersPerSec float64
	P50, P99        time.Duration
	Batches         int64
}

// Bench funds the accounts it needs (owners "bench_…"), then runs cfg's load
// and reports throughput and latency. Every transfer is durable before it
// is counted.
func Bench(ctx context.Context, w *Writer, cfg BenchConfig) (BenchResult, error) {
	if cfg.Accounts <= 1 {
		cfg.Accounts = 10_000
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 2_000
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	const cur = "USD"
	run := pb.NewID("", time.Now())[:10]
	owner := func(i int) string { return fmt.Sprintf("bench_%s_%d", run, i) }
	// Set up: every account gets a large balance from the funding account.
	const fund = int64(1e12) // many runs over one database stay inside int64
	for lo := 0; lo < cfg.Accounts; lo += 1000 {
		hi := min(lo+1000, cfg.Accounts)
		if _, err := w.Submit(ctx, func(tx *Tx) (any, error) {
			src, err := tx.EnsureAccount(pb.OwnerFunding, cur, 0)
			if err != nil {
				return nil, err
			}
			for i := lo; i < hi; i++ {
				a, err := tx.EnsureAccount(owner(i), cur, pb.DebitsMustNotExceedCredits)
				if err != nil {
					return nil, err
				}
				if _, err := tx.Transfer(src, a, fund, "bench_fund"); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}); err != nil {
			return BenchResult{}, fmt.Errorf("couldn't fund bench accounts: %w", err)
		}
	}
	startBatches := w.Stats().Batches
	var done atomic.Int64
	deadline := time.Now().Add(cfg.Duration)
	lat := make([][]time.Duration, cfg.Clients)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for c := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(deadline) && (cfg.Transfers <= 0 || done.Load() < cfg.Transfers) {
				d, cr := 0, 1+r.IntN(cfg.Accounts-1)
				if !cfg.Hot {
					d = r.IntN(cfg.Accounts)
					if cr == d {
						cr = 0
					}
				}
				from, to := owner(d), owner(cr)
				t0 := time.Now()
				_, err := w.Submit(ctx, func(tx *Tx) (any, error) {
					a, err := tx.Account(from, cur)
					if err != nil {
						return nil, err
					}
					b, err := tx.Account(to, cur)
					if err != nil {
						return nil, err
					}
					return tx.Transfer(a, b, 1, "bench")
				})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		return BenchResult{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := BenchResult{Transfers: done.Load(), Seconds: elapsed, TransfersPerSec: float64(done.Load()) / elapsed}
	if len(all) > 0 {
		res.P50, res.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	res.Batches = w.Stats().Batches - startBatches
	return res, nil
}
