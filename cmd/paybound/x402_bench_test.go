package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/paybound/paybound/cmd/paybound/bench"
	"github.com/paybound/paybound/internal/x402pay"
	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// BenchmarkX402 measures paid requests over loopback against a real Main,
// each case beside a baseline of the same handler unpaid in the same run:
// unpaid, tab (a voucher per request checked by the seller, one deposit
// per 10,000 requests per payer) and exact (a ledger payment per request).
// Each reports req/s, the p50/p99 latency the clients saw in ms, and the
// p50/p99 of the latency the paywall added on the server (add_p50_ms,
// add_p99_ms: the time in the Middleware minus the handler's, so the
// payment's check, the voucher's durable save and the settlement), and
// cpu_us/req, the process's CPU per request (clients and server). The
// clients are X402_BENCH_CLIENTS goroutines (default 16), each its own
// payer Transport and so its own tab.
//
//	X402_BENCH_CLIENTS=128 go test ./cmd/paybound -run '^$' -bench BenchmarkX402 -benchtime 20000x
func BenchmarkX402(b *testing.B) {
	clients := 16
	if v, err := strconv.Atoi(os.Getenv("X402_BENCH_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	riskFile := filepath.Join(b.TempDir(), "risk.json")
	if err := os.WriteFile(riskFile, []byte(bench.LoadRiskConfig), 0o600); err != nil {
		b.Fatal(err)
	}
	w := newX402WorldWith(b, map[string]any{"max_amount": 1000, "budget": map[string]any{"amount": 10_000_000, "period": "week"}},
		func(m *Main) { m.Config.RiskConfig = riskFile })
	w.ok(201, w.call("POST", "/v1/topups", w.userKey, "", map[string]any{"amount": 5_000_000, "currency": "USD"}))
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"quote":"the early bird pays the worm"}`)
		if h, ok := r.Context().Value(handlerTime{}).(*time.Duration); ok {
			*h = time.Since(t0)
		}
	})
	var addMu sync.Mutex
	var added []time.Duration
	timed := func(h http.Handler) http.Handler { // the paywall's time minus the handler's
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			in := new(time.Duration)
			t0 := time.Now()
			h.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), handlerTime{}, in)))
			d := time.Since(t0) - *in
			addMu.Lock()
			added = append(added, d)
			addMu.Unlock()
		})
	}
	st, err := x402.OpenFileTabStore(filepath.Join(b.TempDir(), "tabs.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	fac := &x402.FacilitatorClient{URL: w.m.URL() + "/x402", HTTP: &http.Client{Transport: pooled()}}
	tabs := (&x402.Middleware{Network: "paybound:local", PayTo: w.merch, Price: x402.Fixed(tick, "USD", ""), Facilitator: fac,
		Tabs: &x402.Tabs{Store: st, MinDeposit: 100 * cent,
			Claims: &x402.FacilitatorClient{URL: w.m.URL() + "/x402", Header: http.Header{"Authorization": {"Bearer " + w.merchKey}}}}}).Wrap(handler)
	memTabs := (&x402.Middleware{Network: "paybound:local", PayTo: w.merch, Price: x402.Fixed(tick, "USD", ""), Facilitator: fac,
		Tabs: &x402.Tabs{Store: &memoryTabs{}, MinDeposit: 100 * cent}}).Wrap(handler)
	exact := (&x402.Middleware{Network: "paybound:local", PayTo: w.merch, Price: x402.Fixed(cent, "USD", ""), Facilitator: fac}).Wrap(handler)
	exactInProc := (&x402.Middleware{Network: "paybound:local", PayTo: w.merch, Price: x402.Fixed(cent, "USD", ""),
		Facilitator: inProcess{w.m.x402.Load()}}).Wrap(handler)
	mux := http.NewServeMux()
	mux.Handle("/unpaid", timed(handler))
	mux.Handle("/tab", timed(tabs))
	mux.Handle("/exact", timed(exact))
	mux.Handle("/exact-inproc", timed(exactInProc))
	mux.Handle("/tab-nosync", timed(memTabs))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		name, path string
		payer      func() http.RoundTripper
	}{
		{"unpaid", "/unpaid", func() http.RoundTripper { return pooled() }},
		{"tab", "/tab", func() http.RoundTripper {
			return &x402.Transport{Base: pooled(), Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: 1 << 40, TabDeposit: 100 * cent}
		}},
		{"tab-nosync", "/tab-nosync", func() http.RoundTripper {
			return &x402.Transport{Base: pooled(), Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: 1 << 40, TabDeposit: 100 * cent}
		}},
		{"exact", "/exact", func() http.RoundTripper {
			return &x402.Transport{Base: pooled(), Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: 1 << 40}
		}},
		{"exact-inproc", "/exact-inproc", func() http.RoundTripper {
			return &x402.Transport{Base: pooled(), Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: 1 << 40}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			addMu.Lock()
			added = added[:0]
			addMu.Unlock()
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			cpu0 := cpuTime()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				hc := &http.Client{Transport: c.payer()}
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					res, err := hc.Get(srv.URL + c.path)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						var pr x402.PaymentRequired
						var sr x402.SettlementResponse
						wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentRequired), &pr)
						wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentResponse), &sr)
						b.Errorf("%s: %d %q %+v", c.path, res.StatusCode, pr.Error, sr)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			el := time.Since(start)
			if b.N > 0 {
				// the process's CPU (clients, paywall and server) per request:
				// what a busy shared machine does not change
				b.ReportMetric(float64((cpuTime()-cpu0)/time.Microsecond)/float64(b.N), "cpu_us/req")
			}
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/el.Seconds(), "req/s")
				b.ReportMetric(ms(lat[len(lat)/2]), "p50_ms")
				b.ReportMetric(ms(lat[len(lat)*99/100]), "p99_ms")
			}
			addMu.Lock()
			slices.Sort(added)
			if len(added) > 0 {
				b.ReportMetric(ms(added[len(added)/2]), "add_p50_ms")
				b.ReportMetric(ms(added[len(added)*99/100]), "add_p99_ms")
			}
			addMu.Unlock()
		})
	}
	w.verify()
}

// inProcess is the server's own facilitator called in process: a seller
// on the same host as Paybound skips the HTTP hop to /x402.
type inProcess struct{ s *x402pay.Service }

func (f inProcess) Verify(ctx context.Context, req *x402.FacilitatorRequest) (*x402.VerifyResponse, error) {
	v, err := f.s.Verify(ctx, req)
	return &v, err
}

func (f inProcess) Settle(ctx context.Context, req *x402.FacilitatorRequest) (*x402.SettlementResponse, error) {
	v, err := f.s.Settle(ctx, req)
	return &v, err
}

// handlerTime is the context key of where the benchmark's handler writes
// how long it took.
type handlerTime struct{}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pooled is a transport that keeps enough idle connections for a
// benchmark's goroutines.
func pooled() *http.Transport {
	return &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}
}

// memoryTabs keeps vouchers in memory only: not durable, it shows what the
// file store's sync costs the tab case.
type memoryTabs struct{}

func (*memoryTabs) Load() ([]x402.SellerTab, error) { return nil, nil }
func (*memoryTabs) Save(x402.SellerTab) error       { return nil }
