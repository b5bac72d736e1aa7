package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/cmd/paybound/bench"
)

// BenchmarkMCPPay measures pay tool calls over streamable HTTP (/mcp) on
// the real server (SQLite, the load-test risk thresholds that bench
// payments uses): each parallel worker has its own MCP session, as an
// agent's client would, and every call is a payment under one mandate,
// captured at once. It reports calls/s (target: at least 2,000/s).
//
//	go test ./cmd/paybound -run '^$' -bench BenchmarkMCPPay -benchtime 20000x
func BenchmarkMCPPay(b *testing.B) { benchmarkMCPPay(b, "") }

// BenchmarkMCPPaySessions is BenchmarkMCPPay with clients of protocol
// 2025-11-25, each call in its client's session.
func BenchmarkMCPPaySessions(b *testing.B) { benchmarkMCPPay(b, "2025-11-25") }

// BenchmarkMCPPayPlain is BenchmarkMCPPay with TestMCPPayServerCPU's plain
// client, whose CPU is a small part of the process's: its CPU profile is
// the server's.
func BenchmarkMCPPayPlain(b *testing.B) { benchmarkMCPPay(b, "plain") }

func benchmarkMCPPay(b *testing.B, version string) {
	w := newWorld(b, func(m *Main) { m.Config.RiskConfig = loadRisk(b, m.Config.DataDir); m.PanicOnInvariant = false })
	cpu0 := cpuTime()
	start := time.Now()
	failed := payCalls(b, w.api, w.m.URL(), w.userKey, w.agent, w.agentKey, w.merch, version, b.N, 48*runtime.GOMAXPROCS(0), b.ResetTimer)
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d of %d pay calls failed", failed, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	// The process's CPU time a call (server and client: they share the
	// process), which other work on the machine does not inflate as it
	// does the rate.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
}

// TestMCPPayServerCPU measures what BenchmarkMCPPay does with the server
// in a process of its own (the built binary, SQLite): pay calls per second,
// the server's CPU time a call (the server process's alone) and the
// client's (this process's, the SDK's client). It runs when
// PAYBOUND_MCP_CALLS names how many calls to make:
//
//	PAYBOUND_MCP_CALLS=8000 go test ./cmd/paybound -run TestMCPPayServerCPU -v
//
// PAYBOUND_MCP_WORKERS sets how many clients call at once (default 96:
// each call waits for its payment's ledger commit, so the rate needs
// many in flight; 96 made 20-30% more calls/s than 32 on 2 cores, and
// more payments a commit took less CPU each), and PAYBOUND_MCP_BIN runs
// a binary built already
// instead of building this tree, to compare two builds run after run in
// the same sitting (A/B). PAYBOUND_MCP_CLIENTS lists the clients to run,
// by protocol (default 2026-07-28,2025-11-25,plain): the SDK's client of
// each protocol, and "plain", a client of 2026-07-28 that posts each
// call's JSON-RPC request itself, as little client CPU as a call can
// take, to see the server's rate where the SDK's client would take the
// CPU the server needs.
func TestMCPPayServerCPU(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PAYBOUND_MCP_CALLS"))
	if n <= 0 {
		t.Skip("set PAYBOUND_MCP_CALLS to measure")
	}
	workers := 96
	if w, err := strconv.Atoi(os.Getenv("PAYBOUND_MCP_WORKERS")); err == nil && w > 0 {
		workers = w
	}
	bin := os.Getenv("PAYBOUND_MCP_BIN")
	if bin == "" {
		bin = buildBinary(t)
	}
	dir := t.TempDir()
	p := startProcDB(t, bin, dir, "")
	a := &api{t: t, base: p.base}
	key, err := os.ReadFile(filepath.Join(dir, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	op := strings.TrimSpace(string(key))
	user := a.ok(201, a.call("POST", "/v1/users", op, "", map[string]any{"name": "u"}))
	merch := a.ok(201, a.call("POST", "/v1/merchants", op, "", map[string]any{"name": "m"}))
	ag := a.ok(201, a.call("POST", "/v1/agents", user.str("api_key"), "", map[string]any{"name": "bot"}))
	clients := "2026-07-28,2025-11-25,plain"
	if c := os.Getenv("PAYBOUND_MCP_CLIENTS"); c != "" {
		clients = c
	}
	for _, version := range strings.Split(clients, ",") {
		var cpu0, client0 time.Duration
		var start time.Time
		ready := func() { cpu0, client0, start = procCPU(t, p.cmd.Process.Pid), cpuTime(), time.Now() }
		if failed := payCalls(t, a, p.base, user.str("api_key"), ag.str("id"), ag.str("api_key"), merch.str("id"), version, n, workers, ready); failed > 0 {
			t.Fatalf("%d of %d pay calls failed", failed, n)
		}
		elapsed, cpu, client := time.Since(start), procCPU(t, p.cmd.Process.Pid)-cpu0, cpuTime()-client0
		t.Logf("protocol %s, %d pay calls by %d clients: %.0f calls/s, server CPU %.0f µs a call, client CPU %.0f µs a call", version, n, workers,
			float64(n)/elapsed.Seconds(), float64(cpu.Microseconds())/float64(n), float64(client.Microseconds())/float64(n))
	}
}

// payCalls funds the user, grants its agent a mandate, and makes n pay
// calls through /mcp at base from workers clients of protocol version (""
// for the SDK's latest; "plain" for plainPay's), calling ready once they
// are connected; it returns how many failed.
func payCalls(t testing.TB, a *api, base, userKey, agentID, agentKey, merchant, version string, n, workers int, ready func()) int64 {
	a.ok(201, a.call("POST", "/v1/topups", userKey, "", map[string]any{"amount": 900_000_000_000, "currency": "USD"}))
	mdt := a.ok(201, a.call("POST", "/v1/mandates", userKey, "", map[string]any{"agent_id": agentID, "description": "bench",
		"currency": "USD", "max_amount": 100, "budget": map[string]any{"amount": 900_000_000_000, "period": "total"}})).str("id")
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	defer tr.CloseIdleConnections()
	if version == "plain" {
		hc := &http.Client{Transport: tr}
		ready()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					if !plainPay(hc, base, agentKey, merchant, mdt, i) {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return failed.Load()
	}
	css := make([]*mcp.ClientSession, workers)
	for i := range css {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearerOver{key: agentKey, rt: tr}}},
			&mcp.ClientSessionOptions{ProtocolVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		css[i] = cs
	}
	ready()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for _, cs := range css {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "pay", Arguments: map[string]any{"merchant_id": merchant,
					"amount": 1, "currency": "USD", "description": "bench", "mandate_id": mdt, "idempotency_key": fmt.Sprintf("%s-%d", mdt, i),
					"provenance": map[string]any{"payee": "user", "amount": "user"}}})
				if err != nil || res.IsError {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

// plainPay makes pay call i as the SDK's client of protocol 2026-07-28
// sends it (its headers and _meta), over hc, and reports whether it paid.
func plainPay(hc *http.Client, base, agentKey, merchant, mandate string, i int64) bool {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},`+
		`"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"name":"pay",`+
		`"arguments":{"amount":1,"currency":"USD","description":"bench","idempotency_key":"%s-%d","mandate_id":%q,"merchant_id":%q,`+
		`"provenance":{"amount":"user","payee":"user"}}}}`, i, mandate, i, mandate, merchant)
	r, err := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(body))
	if err != nil {
		return false
	}
	r.Header.Set("Authorization", "Bearer "+agentKey)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	r.Header.Set("Mcp-Method", "tools/call")
	r.Header.Set("Mcp-Name", "pay")
	res, err := hc.Do(r)
	if err != nil {
		return false
	}
	defer func() { io.Copy(io.Discard, res.Body); res.Body.Close() }() // the connection is reused
	var out struct {
		Result *struct {
			IsError           bool `json:"isError"`
			StructuredContent struct {
				Status string `json:"status"`
			} `json:"structuredContent"`
		} `json:"result"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&out) != nil || out.Result == nil {
		return false
	}
	return !out.Result.IsError && out.Result.StructuredContent.Status == string(pb.StatusCaptured)
}

// procCPU is process pid's user and system CPU time so far (Linux).
func procCPU(t testing.TB, pid int) time.Duration {
	d, err := bench.ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return d
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
