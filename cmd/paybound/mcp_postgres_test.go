package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/paybound/paybound/internal/storetest"
)

// startSharedProcs starts n paybound processes on database db, sharing the
// first one's operator and log keys as one deployment does, and returns
// them with the operator key.
func startSharedProcs(t *testing.T, bin, db string, n int) ([]*proc, string) {
	t.Helper()
	first := t.TempDir()
	procs := []*proc{startProcDB(t, bin, first, db)}
	key, err := os.ReadFile(filepath.Join(first, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := os.ReadFile(filepath.Join(first, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	for range n - 1 {
		dir := t.TempDir()
		for name, b := range map[string][]byte{"operator.key": key, "log.key": logKey} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		procs = append(procs, startProcDB(t, bin, dir, db))
	}
	return procs, strings.TrimSpace(string(key))
}

// TestMCPTwoProcessesOnePostgres: two server processes on one PostgreSQL
// database, one mandate of 50.00, and 100 concurrent pay calls of 1.00
// through /mcp on both: exactly the budget is spent, never more, and every
// other call is declined mandate_budget_exhausted.
func TestMCPTwoProcessesOnePostgres(t *testing.T) {
	db := storetest.PostgresURL(t)
	bin := buildBinary(t)
	procs, op := startSharedProcs(t, bin, db, 2)
	a := &api{t: t, base: procs[0].base}
	merchant := a.ok(201, a.call("POST", "/v1/merchants", op, "", map[string]any{"name": "m"}))
	user := a.ok(201, a.call("POST", "/v1/users", op, "", map[string]any{"name": "u"}))
	uk := user.str("api_key")
	a.ok(201, a.call("POST", "/v1/topups", uk, "", map[string]any{"amount": 100000, "currency": "USD"}))
	ag := a.ok(201, a.call("POST", "/v1/agents", uk, "", map[string]any{"name": "bot"}))
	mdt := a.ok(201, a.call("POST", "/v1/mandates", uk, "", map[string]any{"agent_id": ag.str("id"), "description": "one mandate",
		"currency": "USD", "max_amount": 100, "budget": map[string]any{"amount": 5000, "period": "total"}})).str("id")

	const calls, sessions = 100, 10
	var css []*mcp.ClientSession
	for i := range sessions {
		css = append(css, mcpSession(t, procs[i%2].base, bearerTransport{ag.str("api_key")}))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, isErr, _ := mcpCall(t, css[i%sessions], "pay", map[string]any{"merchant_id": merchant.str("id"), "amount": 100,
				"currency": "USD", "description": "x", "mandate_id": mdt, "idempotency_key": fmt.Sprintf("c-%d", i),
				"provenance": map[string]any{"payee": "user", "amount": "user"}})
			o := fmt.Sprint(out["status"])
			if isErr {
				e, _ := out["error"].(map[string]any)
				o = fmt.Sprint("error ", e["code"])
			}
			mu.Lock()
			outcomes[o]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if outcomes["captured"] != 50 || outcomes["error mandate_budget_exhausted"] != 50 {
		t.Fatalf("outcomes %v; want 50 captured and 50 mandate_budget_exhausted", outcomes)
	}
	m := a.ok(200, a.call("GET", "/v1/mandates/"+mdt, uk, "", nil))
	if m.num("remaining_budget") != 0 || m.num("payments_count") != 50 {
		t.Fatalf("mandate after the race: %s", m.raw)
	}
	mk := merchant.str("api_key")
	for _, p := range procs {
		pa := &api{t: t, base: p.base}
		bal := pa.ok(200, pa.call("GET", "/v1/balance", mk, "", nil))
		if !strings.Contains(string(bal.raw), `"available":5000`) {
			t.Fatalf("merchant's balance through %s: %s", p.base, bal.raw)
		}
		if v := pa.ok(200, pa.call("GET", "/v1/ledger/verify", op, "", nil)); v.body["ok"] != true {
			t.Fatalf("ledger verify: %s", v.raw)
		}
	}
}
