package main

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/ledger"
)

// benchWorld is a world whose user has credit enough for any run, priced
// at 1.00 per 1M tokens of model "bench".
// The ledger's invariant checks of tests are off, as in production, and
// the clients keep their connections (http.DefaultTransport keeps 2 idle
// per host; benchmarks run alone, so changing it here touches no test).
func benchWorld(b *testing.B) *world {
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 256
	w := newWorld(b, func(m *Main) { m.PanicOnInvariant = false })
	w.ok(201, w.call("POST", "/v1/billing/prices", w.merchKey, "", map[string]any{"model": "bench", "currency": "USD", "unit_price": "1"}))
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 1_000_000_000_000, "currency": "USD"}))
	return w
}

// reportWriter reports what the ledger writer did since before (its
// Stats then): operations per committed batch and the mean commit time,
// which tell a writer that applies slowly from a store that commits slowly.
func reportWriter(b *testing.B, w *world, before ledger.Stats) {
	st := w.m.Service.Ledger().Stats()
	if n := st.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(st.Ops-before.Ops)/float64(n), "ops/batch")
		b.ReportMetric(float64((st.CommitTime-before.CommitTime).Microseconds())/1000/float64(n), "commit_ms")
	}
}

// reportCPU reports the CPU the process used since before (cpuTime) per
// unit of work (n units), in µs, as metric name: the server's and the
// benchmark's clients', which run in the same process. On a shared
// machine, CPU per operation varies less than operations per second.
func reportCPU(b *testing.B, before time.Duration, n int, name string) {
	if n > 0 {
		b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(n), name)
	}
}

// BenchmarkTokenPayIngest: usage events in batches of 1,000, from 4
// clients at once, each batch acknowledged once durable. Reports
// events/s.
func BenchmarkTokenPayIngest(b *testing.B) {
	w := benchWorld(b)
	const clients, batch = 4, 1000
	var seq atomic.Int64
	body := func() map[string]any {
		evs := make([]map[string]any, batch)
		for i := range evs {
			evs[i] = map[string]any{"id": fmt.Sprintf("b%d", seq.Add(1)), "customer": w.user, "model": "bench",
				"usage": map[string]any{"input": 1000, "output": 250}}
		}
		return map[string]any{"events": evs}
	}
	st0, cpu0 := w.m.Service.Ledger().Stats(), cpuTime()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				r := w.call("POST", "/v1/billing/events", w.merchKey, "-", body())
				if r.status != 200 || r.num("accepted") != batch {
					b.Errorf("batch: %d %.300s", r.status, r.raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
	reportWriter(b, w, st0)
	reportCPU(b, cpu0, b.N*batch, "cpu_us/event")
}

// BenchmarkTokenPayReserveSettle: a reservation and the event that
// settles it, from 64 clients at once: "customers", each client over its
// own customer (a provider has many), and "hot", all over one customer,
// whose credit account every operation then changes; and "few", 8
// clients over their own customers, whose p99 is the latency of a pair
// with little queueing (at 64 clients, a pair waits behind the others:
// its latency is about 64 / pairs per second). Reports (reservation +
// settle)/s, the p99 of one pair and the process's CPU per pair.
func BenchmarkTokenPayReserveSettle(b *testing.B) {
	own := func(clients int) func(b *testing.B) {
		return func(b *testing.B) {
			w := benchWorld(b)
			customers := make([]string, clients)
			for i := range customers {
				u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": fmt.Sprintf("c%d", i)}))
				customers[i] = u.str("id")
				w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": customers[i], "amount": 1_000_000_000_000, "currency": "USD"}))
			}
			reserveSettle(b, w, customers)
		}
	}
	b.Run("customers", own(64))
	b.Run("hot", func(b *testing.B) {
		w := benchWorld(b)
		customers := make([]string, 64)
		for i := range customers {
			customers[i] = w.user
		}
		reserveSettle(b, w, customers)
	})
	b.Run("few", own(8))
}

// reserveSettle runs b.N reservation + settle pairs from one client per
// customer (customers may repeat) and reports them.
func reserveSettle(b *testing.B, w *world, customers []string) {
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	st0, cpu0 := w.m.Service.Ledger().Stats(), cpuTime()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for _, customer := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				r := w.call("POST", "/v1/billing/reservations", w.merchKey, "", map[string]any{"customer": customer, "estimate": 1000, "model": "bench"})
				if r.body["allowed"] != true {
					b.Errorf("reservation: %d %.300s", r.status, r.raw)
					return
				}
				e := w.call("POST", "/v1/billing/events", w.merchKey, "-", map[string]any{"events": []any{map[string]any{"id": fmt.Sprintf("s%d", seq.Add(1)),
					"customer": customer, "model": "bench", "reservation": r.str("reservation_id"), "usage": map[string]any{"output": 700}}}})
				if e.num("accepted") != 1 {
					b.Errorf("settle: %d %.300s", e.status, e.raw)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el.Seconds(), "pairs/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	}
	reportWriter(b, w, st0)
	reportCPU(b, cpu0, len(lat), "cpu_us/pair")
}
