package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkGatewayAddedLatency: one client's chat completions, straight to
// the fake upstream and through the gateway (which reserves before it
// forwards and settles after); reports both p50s and p99s and the p99
// added, in ms; and the ledger's mean commit time and operations per
// batch while it ran through the gateway: the two commits (the reservation
// and the settlement, both durable before the response completes) are
// most of what the gateway adds. pair_p50_ms is the p50 of the same two
// calls (a reservation, then the event that settles it) made by one
// client straight to the server; own_p50_ms is the gateway's own share,
// the p50 added less that pair's. cpu_us/request is the process's CPU per
// request through the gateway (client, gateway, server and upstream
// together).
func BenchmarkGatewayAddedLatency(b *testing.B) {
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 256
	w, gw, _ := gatewayWorld(b)
	w.ok(201, w.call("POST", "/v1/billing/grants", w.merchKey, "", map[string]any{"customer": w.user, "amount": 1_000_000_000, "currency": "USD"}))
	up, _ := fakeUpstream(b)
	body := `{"model":"fake-1","max_tokens":50,"messages":[{"role":"user","content":"say 5"}]}`
	measure := func(url string) []time.Duration {
		var lat []time.Duration
		for range b.N {
			t0 := time.Now()
			req, _ := http.NewRequest("POST", url, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+w.userKey)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var buf [4096]byte
			for {
				if _, err := res.Body.Read(buf[:]); err != nil {
					break
				}
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatalf("status %d", res.StatusCode)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return lat
	}
	b.ResetTimer()
	direct := measure(up.URL + "/v1/chat/completions")
	st0, cpu0 := w.m.Service.Ledger().Stats(), cpuTime()
	via := measure(gw.URL + "/v1/chat/completions")
	reportCPU(b, cpu0, b.N, "cpu_us/request")
	reportWriter(b, w, st0)
	var pairs []time.Duration
	for i := range b.N {
		t0 := time.Now()
		r := w.call("POST", "/v1/billing/reservations", w.merchKey, "", map[string]any{"customer": w.user, "estimate": 50, "model": "fake-1", "token_type": "output"})
		if r.body["allowed"] != true {
			b.Fatalf("reservation: %d %.300s", r.status, r.raw)
		}
		e := w.call("POST", "/v1/billing/events", w.merchKey, "-", map[string]any{"events": []any{map[string]any{"id": fmt.Sprintf("pair%d", i),
			"customer": w.user, "model": "fake-1", "reservation": r.str("reservation_id"), "usage": map[string]any{"input": 10, "output": 5}}}})
		if e.num("accepted") != 1 {
			b.Fatalf("settle: %d %.300s", e.status, e.raw)
		}
		pairs = append(pairs, time.Since(t0))
	}
	slices.Sort(pairs)
	q := func(l []time.Duration, p int) float64 { return float64(l[len(l)*p/100].Microseconds()) / 1000 }
	b.ReportMetric(q(direct, 50), "direct_p50_ms")
	b.ReportMetric(q(direct, 99), "direct_p99_ms")
	b.ReportMetric(q(via, 50), "gateway_p50_ms")
	b.ReportMetric(q(via, 99), "gateway_p99_ms")
	b.ReportMetric(q(via, 99)-q(direct, 99), "added_p99_ms")
	b.ReportMetric(q(pairs, 50), "pair_p50_ms")
	b.ReportMetric(q(via, 50)-q(direct, 50)-q(pairs, 50), "own_p50_ms")
}
