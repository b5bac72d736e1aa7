package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/storetest"
)

// paymentOutcome names what a payment request did by the payment's own
// status, not the HTTP code alone: a payment that waits for the user's
// confirmation answers 201 too, and is no success.
func paymentOutcome(r resp) string {
	if r.status < 300 {
		return fmt.Sprintf("%d %s", r.status, r.str("status"))
	}
	if code := r.errField("code"); r.errField("payment_id") != "" {
		return fmt.Sprintf("%d declined %s", r.status, code)
	}
	return fmt.Sprintf("%d %s", r.status, r.errField("code"))
}

// startDeployment starts n paybound processes on the database db, as one
// deployment: the first creates the operator key and the log key, which the
// others are given. extra returns a process's flags beyond startProcDB's,
// given its data directory. It returns the processes and the operator key.
func startDeployment(t *testing.T, bin, db string, n int, extra func(dir string) []string) ([]*proc, string) {
	t.Helper()
	var procs []*proc
	var opKey, logKey []byte
	for i := range n {
		dir := t.TempDir()
		if i > 0 {
			if err := os.WriteFile(filepath.Join(dir, "operator.key"), opKey, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "log.key"), logKey, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var flags []string
		if extra != nil {
			flags = extra(dir)
		}
		procs = append(procs, startProcDB(t, bin, dir, db, flags...))
		if i == 0 {
			var err error
			if opKey, err = os.ReadFile(filepath.Join(dir, "operator.key")); err != nil {
				t.Fatal(err)
			}
			if logKey, err = os.ReadFile(filepath.Join(dir, "log.key")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return procs, strings.TrimSpace(string(opKey))
}

// TestSignedReplayAcrossProcesses: one signed payment request sent four
// times to each of two processes on one PostgreSQL database at once (the
// second process reached under the first's authority, as behind a load
// balancer) makes one payment; the seven others are refused as replays,
// however the processes' batches meet (a replay another process committed
// first is a conflict its batch is recomputed from).
func TestSignedReplayAcrossProcesses(t *testing.T) {
	db := storetest.PostgresURL(t) // first: it skips without PostgreSQL
	procs, op := startDeployment(t, buildBinary(t), db, 2, nil)
	w, mc, sg, ag := signedWorld(t, procs[0].base, op)
	userKey := w.userKey
	mdt := w.ok(201, w.call("POST", "/v1/mandates", userKey, "", map[string]any{"agent_id": ag.str("id"), "description": "coffee",
		"currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000}}))
	body := []byte(`{"amount":100,"currency":"USD","merchant_id":"` + mc.str("id") + `","mandate_id":"` + mdt.str("id") + `"}`)
	req := sg.signed(t, "POST", procs[0].base+"/v1/payments", body, "x-1", time.Now(), nil)
	reqs := make([]*http.Request, 8)
	for i := range reqs {
		reqs[i] = req.Clone(context.Background())
		if i%2 == 1 {
			reqs[i].URL.Host = strings.TrimPrefix(procs[1].base, "http://") // r.Host stays the first's
		}
	}
	if got := sendAtOnce(t, reqs); got["201 captured"] != 1 || got["401 signature_replayed"] != 7 || len(got) != 2 {
		t.Fatalf("outcomes %v; want one payment and seven replays refused", got)
	}
	for _, p := range procs {
		pa := &api{t: t, base: p.base}
		b := pa.ok(200, pa.call("GET", "/v1/balance", userKey, "", nil))
		if !strings.Contains(string(b.raw), `"available":9900,`) {
			t.Fatalf("balance on %s after one payment of 100 from 10000: %s", p.base, b.raw)
		}
	}
}

// TestSeveralProcessesOnePostgres runs three real paybound processes on one
// PostgreSQL database and hammers one hot wallet and one mandate budget
// through all of them: no overdraft, no budget overrun, exactly-once capture
// and idempotency hold across processes.
func TestSeveralProcessesOnePostgres(t *testing.T) {
	db := storetest.PostgresURL(t)
	bin := buildBinary(t)
	var procs []*proc
	var key string
	var logKey []byte
	for i := range 3 {
		dir := t.TempDir()
		if i > 0 {
			// Every process of one deployment shares the operator key and
			// the log key; one with another log key is refused.
			if err := os.WriteFile(filepath.Join(dir, "operator.key"), []byte(key+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				m := NewMain()
				m.Config.Addr, m.Config.DataDir, m.Config.DB = "127.0.0.1:0", dir, db
				m.Stdout, m.Stderr = io.Discard, io.Discard
				err := m.Run(t.Context())
				m.Close()
				if err == nil || !strings.Contains(err.Error(), "copy log.key") {
					t.Fatalf("a process with its own log key: %v", err)
				}
				os.Remove(filepath.Join(dir, "log.key"))
			}
			if err := os.WriteFile(filepath.Join(dir, "log.key"), logKey, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		p := startProcDB(t, bin, dir, db)
		if i == 0 {
			b, err := os.ReadFile(filepath.Join(dir, "operator.key"))
			if err != nil {
				t.Fatal(err)
			}
			key = strings.TrimSpace(string(b))
			if logKey, err = os.ReadFile(filepath.Join(dir, "log.key")); err != nil {
				t.Fatal(err)
			}
		}
		procs = append(procs, p)
	}
	apis := make([]*api, len(procs))
	for i, p := range procs {
		apis[i] = &api{t: t, base: p.base}
	}
	a := apis[0]
	merchant := a.ok(201, a.call("POST", "/v1/merchants", key, "", map[string]any{"name": "m"}))
	user := a.ok(201, a.call("POST", "/v1/users", key, "", map[string]any{"name": "u"}))
	uk, mk := user.str("api_key"), merchant.str("api_key")
	a.ok(201, a.call("POST", "/v1/topups", uk, "", map[string]any{"amount": 5000, "currency": "USD"}))

	// 200 payments of 1.00 from a wallet of 50.00, through all processes.
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := apis[i%len(apis)].call("POST", "/v1/payments", uk, fmt.Sprintf("hot-%d", i),
				map[string]any{"amount": 100, "currency": "USD", "merchant_id": merchant.str("id")})
			mu.Lock()
			defer mu.Unlock()
			outcomes[paymentOutcome(r)]++
		}()
	}
	wg.Wait()
	if outcomes["201 captured"] != 50 || outcomes["402 declined insufficient_funds"] != 150 || len(outcomes) != 2 {
		t.Fatalf("outcomes %v; want 50 payments and 150 insufficient_funds", outcomes)
	}
	for _, x := range apis {
		b := x.ok(200, x.call("GET", "/v1/balance", uk, "", nil))
		if !strings.Contains(string(b.raw), `"available":0,`) {
			t.Fatalf("wallet after the hot run: %s", b.raw)
		}
	}

	// A mandate budget hammered through every process: exactly 10 of 100.
	a.ok(201, a.call("POST", "/v1/topups", uk, "", map[string]any{"amount": 100_000, "currency": "USD"}))
	ag := a.ok(201, a.call("POST", "/v1/agents", uk, "", map[string]any{"name": "shopper"}))
	hammerMandate(t, apis, uk, ag.str("id"), ag.str("api_key"), merchant.str("id"))

	// One key sent to every process at once: one payment.
	a.ok(201, a.call("POST", "/v1/topups", uk, "", map[string]any{"amount": 1000, "currency": "USD"}))
	ids := map[string]int{}
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := apis[i%len(apis)].call("POST", "/v1/payments", uk, "same-everywhere",
				map[string]any{"amount": 100, "currency": "USD", "merchant_id": merchant.str("id"), "capture_method": "manual"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.status == 201 && r.str("status") == "authorized":
				ids[r.str("id")]++
			case r.status == 409: // still running in the same process
			default:
				t.Errorf("duplicate across processes: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Fatalf("one key made %d payments across processes: %v", len(ids), ids)
	}
	var pid string
	for id := range ids {
		pid = id
	}

	// The hold captured from every process at once: captured once.
	captured := 0
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := apis[i%len(apis)].call("POST", "/v1/payments/"+pid+"/capture", mk, fmt.Sprintf("cap-%d", i), nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.status == 200 && r.str("status") == "captured":
				captured++
			case r.status == 409 && r.errField("code") == "payment_unexpected_state":
			default:
				t.Errorf("concurrent capture: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	if captured != 1 {
		t.Fatalf("the hold was captured %d times", captured)
	}
	b := a.ok(200, a.call("GET", "/v1/balance", mk, "", nil))
	var bal struct {
		Balances []struct{ Available, Pending int64 } `json:"balances"`
	}
	if json.Unmarshal(b.raw, &bal) != nil || len(bal.Balances) != 1 || bal.Balances[0].Available != 6100 || bal.Balances[0].Pending != 0 {
		t.Fatalf("merchant balance: %s; want 61.00 available (50 + 10 under the mandate + 1 captured)", b.raw)
	}
	for _, x := range apis {
		v := x.ok(200, x.call("GET", "/v1/ledger/verify", key, "", nil))
		if v.body["ok"] != true {
			t.Fatalf("ledger verify: %s", v.raw)
		}
	}
	// One log, written by three processes, integrated by whichever came first.
	t.Log(auditOK(t, procs[2].base, key))
}
