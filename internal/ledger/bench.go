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
	run := pb.NewID("", time.Now())[:10]
	b := &benchRun{w: w, cfg: cfg, owner: func(i int) string { return fmt.Sprintf("bench_%s_%d", run, i) }}
	if err := b.fund(ctx); err != nil {
		return BenchResult{}, fmt.Errorf("couldn't fund bench accounts: %w", err)
	}
	startBatches := w.Stats().Batches
	b.deadline = time.Now().Add(cfg.Duration)
	lat := make([][]time.Duration, cfg.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[c] = b.client(ctx, c)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err, _ := b.firstErr.Load().(error); err != nil {
		return BenchResult{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := BenchResult{Transfers: b.done.Load(), Seconds: elapsed, TransfersPerSec: float64(b.done.Load()) / elapsed}
	if len(all) > 0 {
		res.P50, res.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	res.Batches = w.Stats().Batches - startBatches
	return res, nil
}

// benchCurrency is the currency of the bench accounts.
const benchCurrency = "USD"

// benchRun is one run of Bench: its accounts, its clock, and what its
// clients have done so far.
type benchRun struct {
	w        *Writer
	cfg      BenchConfig
	owner    func(i int) string // the owner of bench account i
	deadline time.Time
	done     atomic.Int64 // transfers committed
	firstErr atomic.Value // the first error a client met
}

// fund gives every account a large balance from the funding account, a
// thousand accounts a transaction.
func (b *benchRun) fund(ctx context.Context) error {
	const fund = int64(1e12) // many runs over one database stay inside int64
	for lo := 0; lo < b.cfg.Accounts; lo += 1000 {
		hi := min(lo+1000, b.cfg.Accounts)
		if _, err := b.w.Submit(ctx, func(tx *Tx) (any, error) {
			src, err := tx.EnsureAccount(pb.OwnerFunding, benchCurrency, 0)
			if err != nil {
				return nil, err
			}
			for i := lo; i < hi; i++ {
				a, err := tx.EnsureAccount(b.owner(i), benchCurrency, pb.DebitsMustNotExceedCredits)
				if err != nil {
					return nil, err
				}
				if _, err := tx.Transfer(src, a, fund, "bench_fund"); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// client is client c: it submits transfers of 1 one after the other until
// the deadline (or the run's transfers are done, or a transfer fails), and
// returns the latency of each.
func (b *benchRun) client(ctx context.Context, c int) []time.Duration {
	var lat []time.Duration
	r := rand.New(rand.NewPCG(uint64(c), 7))
	for time.Now().Before(b.deadline) && (b.cfg.Transfers <= 0 || b.done.Load() < b.cfg.Transfers) {
		d, cr := 0, 1+r.IntN(b.cfg.Accounts-1)
		if !b.cfg.Hot {
			d = r.IntN(b.cfg.Accounts)
			if cr == d {
				cr = 0
			}
		}
		from, to := b.owner(d), b.owner(cr)
		t0 := time.Now()
		_, err := b.w.Submit(ctx, func(tx *Tx) (any, error) {
			src, err := tx.Account(from, benchCurrency)
			if err != nil {
				return nil, err
			}
			dst, err := tx.Account(to, benchCurrency)
			if err != nil {
				return nil, err
			}
			return tx.Transfer(src, dst, 1, "bench")
		})
		if err != nil {
			b.firstErr.CompareAndSwap(nil, err)
			return lat
		}
		lat = append(lat, time.Since(t0))
		b.done.Add(1)
	}
	return lat
}
