package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/ledger"
)

// benchWorld is a world whose user has credit enough for any run, priced
// at 1.00 per 1M tokens of model "bench", with the server's garbage
// collector target.
// The ledger's invariant checks of tests are off, as in production, and
// the clients keep their connections (http.DefaultTransport keeps 2 idle
// per host; benchmarks run alone, so changing it here touches no test).
func benchWorld(b *testing.B) *world {
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 256
	// The garbage collector's target of paybound serve (serverGC), unless
	// GOGC says otherwise.
	old := debug.SetGCPercent(100)
	debug.SetGCPercent(old)
	serverGC(os.Getenv)
	b.Cleanup(func() { debug.SetGCPercent(old) })
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
// events/s and the process's CPU per event.
func BenchmarkTokenPayIngest(b *testing.B) {
	w := benchWorld(b)
	st0, cpu0 := w.m.Service.Ledger().Stats(), cpuTime()
	b.ResetTimer()
	el := ingestBatches(b, w.api, w.merchKey, w.user, b.N)
	b.ReportMetric(float64(b.N*eventBatch)/el.Seconds(), "events/s")
	reportWriter(b, w, st0)
	reportCPU(b, cpu0, b.N*eventBatch, "cpu_us/event")
}

// eventBatch is the events of one batch the benchmarks send.
const eventBatch = 1000

// eventSeq numbers the benchmarks' usage events, so that no two calls of
// ingestBatches or pairs over one server send the same ID.
var eventSeq atomic.Int64

// ingestBatches sends n batches of eventBatch events of customer's from 4
// clients at once, and returns how long they took. The clients write
// their bodies by hand and read back only the counts, so that the load
// generator, which shares the machine, costs the server little CPU.
func ingestBatches(t testing.TB, a *api, key, customer string, n int) time.Duration {
	const clients = 4
	body := func() []byte {
		b := make([]byte, 0, eventBatch*96)
		b = append(b, `{"events":[`...)
		for i := range eventBatch {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":"b`...)
			b = strconv.AppendInt(b, eventSeq.Add(1), 10)
			b = append(b, `","customer":"`...)
			b = append(b, customer...)
			b = append(b, `","model":"bench","usage":{"input":1000,"output":250}}`...)
		}
		return append(b, "]}"...)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				status, raw := a.post("/v1/billing/events", key, body())
				var got struct{ Accepted, Refused int }
				if err := json.Unmarshal(raw, &got); status != 200 || err != nil || got.Accepted != eventBatch {
					t.Errorf("batch: %d %.300s", status, raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
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
	st0, cpu0 := w.m.Service.Ledger().Stats(), cpuTime()
	b.ResetTimer()
	lat, el := pairs(b, w.api, w.merchKey, customers, b.N)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el.Seconds(), "pairs/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	}
	reportWriter(b, w, st0)
	reportCPU(b, cpu0, len(lat), "cpu_us/pair")
}

// pairs runs n reservation + settle pairs, with key (the provider's),
// from one client per customer, and returns each pair's latency, sorted,
// and how long they all took. The clients write their bodies by hand and
// read back only what they need, as ingestBatches' do.
func pairs(t testing.TB, a *api, key string, customers []string, n int) ([]time.Duration, time.Duration) {
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for _, customer := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				status, raw := a.postIdem("/v1/billing/reservations", key, fmt.Appendf(nil, `{"customer":%q,"estimate":1000,"model":"bench"}`, customer))
				var rsv struct {
					Allowed       bool   `json:"allowed"`
					ReservationID string `json:"reservation_id"`
				}
				if err := json.Unmarshal(raw, &rsv); err != nil || !rsv.Allowed {
					t.Errorf("reservation: %d %.300s", status, raw)
					return
				}
				status, raw = a.post("/v1/billing/events", key, fmt.Appendf(nil,
					`{"events":[{"id":"s%d","customer":%q,"model":"bench","reservation":%q,"usage":{"output":700}}]}`, eventSeq.Add(1), customer, rsv.ReservationID))
				var got struct{ Accepted int }
				if err := json.Unmarshal(raw, &got); err != nil || got.Accepted != 1 {
					t.Errorf("settle: %d %.300s", status, raw)
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
	return lat, el
}

// TestTokenPayServerCPU measures the server's own CPU per reservation +
// settle pair and per event, with the server in a process of its own
// (`paybound serve` over SQLite; the benchmarks' figures include their
// clients): PAYBOUND_TOKENPAY_PAIRS pairs from 64 clients over their own
// customers, then PAYBOUND_TOKENPAY_BATCHES batches of 1,000 events.
//
//	PAYBOUND_TOKENPAY_PAIRS=5000 PAYBOUND_TOKENPAY_BATCHES=100 go test ./cmd/paybound -run TestTokenPayServerCPU -v
func TestTokenPayServerCPU(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PAYBOUND_TOKENPAY_PAIRS"))
	batches, _ := strconv.Atoi(os.Getenv("PAYBOUND_TOKENPAY_BATCHES"))
	if n <= 0 && batches <= 0 {
		t.Skip("set PAYBOUND_TOKENPAY_PAIRS and/or PAYBOUND_TOKENPAY_BATCHES to measure")
	}
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 256
	dir := t.TempDir()
	p := startProcDB(t, buildBinary(t), dir, "")
	a := &api{t: t, base: p.base}
	key, err := os.ReadFile(filepath.Join(dir, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	op := strings.TrimSpace(string(key))
	merch := a.ok(201, a.call("POST", "/v1/merchants", op, "", map[string]any{"name": "Models"})).str("api_key")
	a.ok(201, a.call("POST", "/v1/billing/prices", merch, "", map[string]any{"model": "bench", "currency": "USD", "unit_price": "1"}))
	customers := make([]string, 64)
	for i := range customers {
		customers[i] = a.ok(201, a.call("POST", "/v1/users", op, "", map[string]any{"name": fmt.Sprintf("c%d", i)})).str("id")
		a.ok(201, a.call("POST", "/v1/billing/grants", merch, "", map[string]any{"customer": customers[i], "amount": 1_000_000_000_000, "currency": "USD"}))
	}
	pid := p.cmd.Process.Pid
	if n > 0 {
		cpu0 := procCPU(t, pid)
		lat, el := pairs(t, a, merch, customers, n)
		cpu := procCPU(t, pid) - cpu0
		t.Logf("%d reservation + settle pairs, 64 clients: %.0f pairs/s, p99 %.1f ms, server CPU %.0f µs a pair",
			len(lat), float64(len(lat))/el.Seconds(), float64(lat[len(lat)*99/100].Microseconds())/1000, float64(cpu.Microseconds())/float64(len(lat)))
	}
	if batches > 0 {
		cpu0 := procCPU(t, pid)
		el := ingestBatches(t, a, merch, customers[0], batches)
		cpu := procCPU(t, pid) - cpu0
		t.Logf("%d batches of %d events, 4 clients: %.0f events/s, server CPU %.1f µs an event",
			batches, eventBatch, float64(batches*eventBatch)/el.Seconds(), float64(cpu.Microseconds())/float64(batches*eventBatch))
	}
}

// post sends body to path with key and no Idempotency-Key, and returns the
// answer's status and body undecoded (call decodes every answer into
// maps, which for an answer about 1,000 events costs the load generator
// more than the server spends on it).
func (a *api) post(path, key string, body []byte) (int, []byte) {
	a.t.Helper()
	r := a.send("POST", path, key, "", bytes.NewReader(body))
	return r.status, r.raw
}

// postIdem is post with a new Idempotency-Key.
func (a *api) postIdem(path, key string, body []byte) (int, []byte) {
	a.t.Helper()
	r := a.send("POST", path, key, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), a.seq.Add(1)), bytes.NewReader(body))
	return r.status, r.raw
}
