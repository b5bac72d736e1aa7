package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// replicated is the primary and synchronous standby that
// `scripts/postgres.sh replicated` started; ./test.sh starts one for
// TestPostgresFailover alone, since the test uses it up.
type replicated struct {
	primary, standby       string // host:port
	primaryDir, standbyDir string // data directories
	bin                    string // PostgreSQL's bin directory
}

func replicatedCluster(t *testing.T) replicated {
	t.Helper()
	c := replicated{
		primary: os.Getenv("PAYBOUND_TEST_PG_PRIMARY"), standby: os.Getenv("PAYBOUND_TEST_PG_STANDBY"),
		primaryDir: os.Getenv("PAYBOUND_TEST_PG_PRIMARY_DIR"), standbyDir: os.Getenv("PAYBOUND_TEST_PG_STANDBY_DIR"),
		bin: os.Getenv("PAYBOUND_TEST_PG_BIN"),
	}
	if c.primary == "" || c.standby == "" || c.primaryDir == "" || c.standbyDir == "" || c.bin == "" {
		const how = "PAYBOUND_TEST_PG_{PRIMARY,STANDBY,PRIMARY_DIR,STANDBY_DIR,BIN} are not set; " +
			"./test.sh starts a replicated cluster with scripts/postgres.sh replicated and sets them"
		if os.Getenv("CI") != "" {
			t.Fatal(how)
		}
		t.Skip(how)
	}
	return c
}

// killPrimary SIGKILLs the primary's postmaster: no shutdown code runs, as
// when its machine is lost.
func (c replicated) killPrimary(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.primaryDir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("the primary is not running (already failed over? start a new cluster): %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("postmaster.pid: %q", first)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("couldn't kill the primary's postmaster %d: %v", pid, err)
	}
}

// promote makes the standby the primary, as a failover manager would; it
// returns once the standby takes writes.
func (c replicated) promote(t *testing.T) {
	t.Helper()
	args := []string{filepath.Join(c.bin, "pg_ctl"), "-D", c.standbyDir, "-w", "-t", "60", "promote"}
	if os.Geteuid() == 0 {
		// The cluster belongs to the postgres user, who alone may promote it.
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl promote: %v\n%s", err, out)
	}
}

// failoverAck is a payment request the server answered definitely.
type failoverAck struct {
	key, user, id, status string // status read from the body
	code                  int
	body, resp            []byte
	sent, done            time.Time // when the attempt that got the answer was sent, and answered
	proc                  int       // which process answered
}

// TestPostgresFailover runs two paybound processes on a PostgreSQL primary
// with a synchronous standby, named together in one multi-host URL with
// target_session_attrs=read-write. Clients pay with Idempotency-Keys and
// retry a failed request with the same key, as docs/scaling.md tells them
// to; mid-load the primary is SIGKILLed and the standby promoted, and the
// processes carry on by themselves. Every acknowledged payment is there
// with the status it was acknowledged with, no key made two payments, the
// ledger counts exactly the payments listed and verifies on each process,
// and every checkpoint published before the failover is consistent with
// the log after it. The time without service is measured and logged.
func TestPostgresFailover(t *testing.T) {
	c := replicatedCluster(t)
	bin := buildBinary(t)
	db := "postgres://postgres@" + c.primary + "," + c.standby + "/postgres?sslmode=disable&target_session_attrs=read-write"

	// Two processes sharing the operator key and the log key.
	dir0, dir1 := t.TempDir(), t.TempDir()
	p0 := startProcDB(t, bin, dir0, db)
	for _, f := range []string{"operator.key", "log.key"} {
		b, err := os.ReadFile(filepath.Join(dir0, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir1, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p1 := startProcDB(t, bin, dir1, db)
	procs := []*proc{p0, p1}
	opKey, _ := os.ReadFile(filepath.Join(dir0, "operator.key"))
	op := strings.TrimSpace(string(opKey))

	a := &api{t: t, base: p0.base}
	merchant := a.ok(201, a.call("POST", "/v1/merchants", op, "", map[string]any{"name": "m"})).str("id")
	const (
		topup   = 1_000_000
		amount  = 100 // every payment is 1.00: the ledger counts them
		clients = 8
	)
	var users []string
	for range 4 {
		u := a.ok(201, a.call("POST", "/v1/users", op, "", map[string]any{"name": "u"}))
		a.ok(201, a.call("POST", "/v1/topups", u.str("api_key"), "", map[string]any{"amount": topup, "currency": "USD"}))
		users = append(users, u.str("api_key"))
	}

	var (
		mu       sync.Mutex
		acks     []failoverAck
		seen     [][]byte // checkpoints published, fetched as a witness would
		outcomes = map[string]int{}
		killedAt time.Time // zero until the kill
		lost     []string  // keys whose retry budget ran out
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 45 * time.Second} // above the store's 30s commit timeout

	// pay sends one payment and retries it with the same key until a
	// definite answer, within a budget of attempts.
	const attempts, pause = 400, 50 * time.Millisecond
	pay := func(client int, key, user string, body []byte) {
		for n := range attempts {
			pi := (client + n) % len(procs) // a retry may go to the other process
			sent := time.Now()
			req, _ := http.NewRequest("POST", procs[pi].base+"/v1/payments", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+user)
			req.Header.Set("Idempotency-Key", key)
			req.Header.Set("Content-Type", "application/json")
			res, err := hc.Do(req)
			var resp []byte
			var code int
			if err == nil {
				resp, err = io.ReadAll(res.Body)
				res.Body.Close()
				code = res.StatusCode
			}
			var out struct {
				ID, Status string
				Error      struct {
					Code      string
					PaymentID string `json:"payment_id"`
				}
			}
			json.Unmarshal(resp, &out)
			done := time.Now()
			mu.Lock()
			switch {
			case err != nil:
				outcomes["connection error"]++
			case res.Header.Get("Idempotent-Replayed") == "true":
				// A retry answered from the stored response: often an
				// attempt whose commit's outcome was unknown to the
				// process that sent it, and did commit.
				outcomes[fmt.Sprintf("%d replayed", code)]++
			default:
				outcomes[fmt.Sprintf("%d %s", code, out.Error.Code)]++
			}
			mu.Unlock()
			if err == nil && code >= 500 && (code != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "") {
				// The database being away is no internal error: 503 says
				// to retry.
				t.Errorf("payment %s: %d %s; want 503 with Retry-After", key, code, resp)
			}
			switch {
			case err != nil, code >= 500, code == http.StatusConflict && out.Error.Code == "idempotency_in_flight":
				// No answer: retry with the same key, after a pause.
				time.Sleep(pause)
				continue
			case code == http.StatusCreated, code == http.StatusPaymentRequired:
				ack := failoverAck{key: key, user: user, id: out.ID, status: out.Status, code: code, body: body, resp: resp, sent: sent, done: done, proc: pi}
				if code == http.StatusPaymentRequired {
					ack.id, ack.status = out.Error.PaymentID, "declined"
				}
				mu.Lock()
				acks = append(acks, ack)
				mu.Unlock()
			default:
				t.Errorf("payment %s: %d %s", key, code, resp)
			}
			return
		}
		mu.Lock()
		lost = append(lost, key)
		mu.Unlock()
	}
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("failover-%d-%d", cl, n)
				body, _ := json.Marshal(map[string]any{"amount": amount, "currency": "USD", "merchant_id": merchant,
					"capture_method": []string{"automatic", "manual"}[n%2], "metadata": map[string]string{"key": key}})
				pay(cl, key, users[(cl+n)%len(users)], body)
			}
		}()
	}
	wg.Add(1)
	go func() { // a witness of the log, reading checkpoints from both processes
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			res, err := hc.Get(procs[n%len(procs)].base + "/v1/log/checkpoint")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				mu.Lock()
				seen = append(seen, b)
				mu.Unlock()
			}
		}
	}()
	// waitFor waits, within limit, until cond holds under mu.
	waitFor := func(limit time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s within %s; outcomes %v", what, limit, outcomes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Mid-load: acknowledged payments and published checkpoints behind us.
	waitFor(60*time.Second, "no 300 payments and 4 checkpoints", func() bool { return len(acks) >= 300 && len(seen) >= 4 })
	mu.Lock()
	killedAt = time.Now()
	acksBefore, seenBefore := len(acks), len(seen)
	mu.Unlock()
	c.killPrimary(t)
	c.promote(t)
	promoted := time.Since(killedAt)

	// The processes carry on by themselves: each serves payments again.
	after := func(pi int) int {
		n := 0
		for _, a := range acks {
			if a.sent.After(killedAt) && a.proc == pi && a.code == http.StatusCreated {
				n++
			}
		}
		return n
	}
	waitFor(60*time.Second, "the processes did not both serve 100 payments after the failover", func() bool {
		return after(0) >= 100 && after(1) >= 100
	})
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if len(lost) > 0 {
		t.Fatalf("%d payments got no definite answer within %d attempts: %v", len(lost), attempts, lost[:min(len(lost), 5)])
	}

	// The time without service: from the kill until the first payment
	// sent after it succeeded (clients retry every 50 ms). It includes
	// PostgreSQL's promotion; the rest is Paybound finding the new primary.
	var down time.Duration = -1
	for _, a := range acks {
		if a.code == http.StatusCreated && a.sent.After(killedAt) {
			if d := a.done.Sub(killedAt); down < 0 || d < down {
				down = d
			}
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	t.Logf("%d payments acknowledged (%d before the kill); answers to all attempts: %v", len(acks), acksBefore, outcomes)
	t.Logf("time without service: %s from the kill to the first successful payment after it (pg_ctl promote, which polls every 100 ms, returned after %s)",
		ms(down), ms(promoted))

	// Every acknowledged payment is there with its acknowledged status, and
	// each key made at most one payment: the list as the operator sees it.
	listed := map[string]map[string]any{}
	byKey := map[string][]string{}
	for starting := ""; ; {
		path := "/v1/payments?limit=100"
		if starting != "" {
			path += "&starting_after=" + starting
		}
		l := a.ok(200, a.call("GET", path, op, "", nil))
		for _, d := range l.body["data"].([]any) {
			p := d.(map[string]any)
			id := p["id"].(string)
			listed[id] = p
			md, _ := p["metadata"].(map[string]any)
			k, _ := md["key"].(string)
			byKey[k] = append(byKey[k], id)
			starting = id
		}
		if l.body["has_more"] != true {
			break
		}
	}
	acked := map[string]bool{}
	for _, ack := range acks {
		p := listed[ack.id]
		if p == nil {
			t.Fatalf("payment %s (key %s) was acknowledged as %s but is not there", ack.id, ack.key, ack.status)
		}
		if p["status"] != ack.status {
			t.Fatalf("payment %s was acknowledged as %s and is now %v", ack.id, ack.status, p["status"])
		}
		acked[ack.key] = true
	}
	paid := 0
	for k, ids := range byKey {
		if len(ids) != 1 {
			t.Fatalf("key %q made %d payments: %v", k, len(ids), ids)
		}
		if !acked[k] {
			t.Fatalf("payment %s of key %q was never acknowledged, yet every request got a definite answer", ids[0], k)
		}
		if s := listed[ids[0]]["status"]; s == "captured" || s == "authorized" {
			paid++
		}
	}
	// The ledger agrees: each wallet paid 1.00 per payment, no more.
	fromLedger := 0
	for _, u := range users {
		b := a.ok(200, a.call("GET", "/v1/balance", u, "", nil))
		avail := int64(b.body["balances"].([]any)[0].(map[string]any)["available"].(float64))
		if (topup-avail)%amount != 0 {
			t.Fatalf("a wallet holds %d: not its top-up less whole payments of %d", avail, amount)
		}
		fromLedger += int((topup - avail) / amount)
	}
	if fromLedger != paid {
		t.Fatalf("the ledger took %d payments from the wallets; %d payments are listed", fromLedger, paid)
	}
	// A retry of any acknowledged payment replays it, byte for byte.
	for i, ack := range acks {
		pi := i % len(procs)
		status, resp, h, err := post(procs[pi].base, "/v1/payments", ack.user, ack.key, ack.body)
		if err != nil || status != ack.code || !bytes.Equal(resp, ack.resp) || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry of %s after the failover: %d %s (replayed %q), acknowledged as %d %s; err %v",
				ack.key, status, resp, h.Get("Idempotent-Replayed"), ack.code, ack.resp, err)
		}
	}
	for _, p := range procs {
		a := &api{t: t, base: p.base}
		if v := a.ok(200, a.call("GET", "/v1/ledger/verify", op, "", nil)); v.body["ok"] != true {
			t.Fatalf("ledger verify after the failover: %s", v.raw)
		}
	}
	t.Logf("%d payments listed, %d taken by the ledger; %d checkpoints seen before the kill, %d after",
		len(listed), fromLedger, seenBefore, len(seen)-seenBefore)
	// The log after the failover extends every checkpoint published, on
	// either process, before and since.
	for _, p := range procs {
		checkLogAfterCrashes(t, p.base, op, seen)
	}
}
