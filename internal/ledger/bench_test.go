package ledger_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/sqlite"
)

func newWriter(tb testing.TB) (*ledger.Writer, *sqlite.Store) {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "ledger.db"))
	if err != nil {
		tb.Fatal(err)
	}
	w, err := ledger.New(ctx, ledger.Config{Store: st, PanicOnInvariant: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close(); st.Close() })
	return w, st
}

// BenchmarkWriter reports durable transfers/s through the batch writer and
// the latency of one Do, for uniform accounts and for one hot account.
func BenchmarkWriter(b *testing.B) {
	for _, hot := range []bool{false, true} {
		name := "uniform"
		if hot {
			name = "hot"
		}
		b.Run(name, func(b *testing.B) {
			w, _ := newWriter(b)
			b.ResetTimer()
			res, err := ledger.Bench(context.Background(), w, ledger.BenchConfig{Hot: hot, Accounts: 1000,
				Transfers: int64(b.N), Duration: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.TransfersPerSec, "transfers/s")
			b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
			b.ReportMetric(float64(res.Transfers)/float64(max(res.Batches, 1)), "transfers/batch")
		})
	}
}
