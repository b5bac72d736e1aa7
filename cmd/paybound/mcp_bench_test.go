package main

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkMCPPay measures pay tool calls over streamable HTTP (/mcp) on
// the real server (SQLite, the load-test risk thresholds that bench
// payments uses): each parallel worker has its own MCP session, as an
// agent's client would, and every call is a payment under one mandate,
// captured at once. It reports calls/s (target: at least 2,000/s).
//
//	go test ./cmd/paybound -run '^$' -bench BenchmarkMCPPay -benchtime 20000x
func BenchmarkMCPPay(b *testing.B) {
	w := newWorld(b, func(m *Main) { m.Config.RiskConfig = loadRisk(b, m.Config.DataDir); m.PanicOnInvariant = false })
	w.ok(201, w.call("POST", "/v1/topups", w.userKey, "", map[string]any{"amount": 900_000_000_000, "currency": "USD"}))
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": "bench",
		"currency": "USD", "max_amount": 100, "budget": map[string]any{"amount": 900_000_000_000, "period": "total"}})).str("id")
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	b.Cleanup(tr.CloseIdleConnections)
	rt := bearerOver{key: w.agentKey, rt: tr}
	var n, failed atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS sessions
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cs := mcpSession(b, w.m.URL(), rt)
		for pb.Next() {
			i := n.Add(1)
			res, err := cs.CallTool(b.Context(), &mcp.CallToolParams{Name: "pay", Arguments: map[string]any{"merchant_id": w.merch,
				"amount": 1, "currency": "USD", "description": "bench", "mandate_id": mdt, "idempotency_key": fmt.Sprintf("b-%d", i),
				"provenance": map[string]any{"payee": "user", "amount": "user"}}})
			if err != nil || res.IsError {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d pay calls failed", f, n.Load())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	// The process's CPU time a call (server and client: they share the
	// process), which other work on the machine does not inflate as it
	// does the rate.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bearerOver sends every request with an API key over rt.
type bearerOver struct {
	key string
	rt  http.RoundTripper
}

func (b bearerOver) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.rt.RoundTrip(r)
}
