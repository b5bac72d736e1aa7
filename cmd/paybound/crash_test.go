package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/cmd/paybound/bench"
	"github.com/paybound/paybound/internal/storetest"
	tl "github.com/paybound/paybound/internal/tlog"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// proc is the real paybound binary running `serve`.
type proc struct {
	cmd  *exec.Cmd
	base string
	log  *procLog
}

// procLog keeps the last lines a process wrote to its stderr (its log, at
// level warn and above).
type procLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *procLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) >= 200 {
		l.lines = l.lines[1:]
	}
	l.lines = append(l.lines, line)
}

// tail returns the lines kept.
func (l *procLog) tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "paybound")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startProc(t *testing.T, bin, dir string) *proc {
	t.Helper()
	return startProcDB(t, bin, dir, storetest.Database(t, dir))
}

// loadRisk writes, in dir, a risk configuration for tests that load the
// server with one agent or payer as fast as they can: durability and
// concurrency tests, whose bursts risk control would rightly stop. It
// raises the velocity and decline-burst limits; every payment is still
// assessed.
func loadRisk(t testing.TB, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "load-risk.json")
	if err := os.WriteFile(f, []byte(bench.LoadRiskConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// startProcDB starts `paybound serve` over dir with database db ("" for
// SQLite in dir), with extra flags after the usual ones.
func startProcDB(t *testing.T, bin, dir, db string, extra ...string) *proc {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-level", "warn", "--risk-config", loadRisk(t, dir), "--sandbox"}
	if db != "" {
		args = append(args, "--db", db)
	}
	args = append(args, extra...) // later flags win: extra may replace the ones above
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // also when the test fails
	lines := make(chan string, 16)
	plog := &procLog{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			plog.add(sc.Text())
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("paybound exited before serving")
			}
			if _, rest, found := strings.Cut(l, "serving on "); found {
				return &proc{cmd: cmd, base: strings.Fields(rest)[0], log: plog}
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("paybound did not start within 30s")
		}
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill() // SIGKILL: no shutdown code runs
	p.cmd.Wait()
}

// ack is a response the server gave: it must survive any crash.
type ack struct {
	key, path, userKey string
	body               []byte
	status             int
	resp               []byte
}

func post(base, path, key, idem string, body []byte) (int, []byte, http.Header, error) {
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Idempotency-Key", idem)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header, err
}

// TestCrashRecovery runs the real binary under load, kills it with SIGKILL
// mid-stream several times, and restarts it: every acknowledged payment and
// capture is there, the ledger verifies, and retrying any request with its
// Idempotency-Key returns the original response.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startProc(t, bin, dir)
	opKey, err := os.ReadFile(filepath.Join(dir, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{t: t, base: p.base}
	op := strings.TrimSpace(string(opKey))
	merchant := a.ok(201, a.call("POST", "/v1/merchants", op, "", map[string]any{"name": "m"}))
	var users []string
	for range 4 {
		u := a.ok(201, a.call("POST", "/v1/users", op, "", map[string]any{"name": "u"}))
		a.ok(201, a.call("POST", "/v1/topups", u.str("api_key"), "", map[string]any{"amount": 1_000_000, "currency": "USD"}))
		users = append(users, u.str("api_key"))
	}

	var mu sync.Mutex
	var acks []ack
	var seen [][]byte // checkpoints published before the kills
	var unknown []ack // sent, but the connection died before an answer
	seq := 0
	for round := range 4 {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for c := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(c)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					seq++
					key := fmt.Sprintf("crash-%d-%d", round, seq)
					mu.Unlock()
					user := users[r.IntN(len(users))]
					body, _ := json.Marshal(map[string]any{"amount": 1 + r.IntN(500), "currency": "USD",
						"merchant_id": merchant.str("id"), "capture_method": []string{"automatic", "manual"}[r.IntN(2)]})
					a := ack{key: key, path: "/v1/payments", userKey: user, body: body}
					var err error
					a.status, a.resp, _, err = post(p.base, a.path, user, key, body)
					mu.Lock()
					if err != nil {
						unknown = append(unknown, a)
						mu.Unlock()
						return
					}
					acks = append(acks, a)
					mu.Unlock()
					if a.status != 201 && a.status != 402 {
						t.Errorf("payment: %d %s", a.status, a.resp)
						return
					}
					var pay struct{ ID, Status string }
					json.Unmarshal(a.resp, &pay)
					if pay.Status == "authorized" {
						c := ack{key: key + "-capture", path: "/v1/payments/" + pay.ID + "/capture", userKey: merchant.str("api_key"), body: []byte(`{}`)}
						c.status, c.resp, _, err = post(p.base, c.path, c.userKey, c.key, c.body)
						mu.Lock()
						if err != nil {
							unknown = append(unknown, c)
						} else {
							acks = append(acks, c)
						}
						mu.Unlock()
					}
				}
			}()
		}
		wg.Add(1)
		go func(base string) { // a witness of the log, reading checkpoints as they come
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if res, err := http.Get(base + "/v1/log/checkpoint"); err == nil {
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode == 200 {
						mu.Lock()
						seen = append(seen, b)
						mu.Unlock()
					}
				}
			}
		}(p.base)
		// Kill at a random moment, but only once this round has done real
		// work and the witness has seen a checkpoint of it: a loaded CI
		// machine (race detector, PostgreSQL) can answer only a handful of
		// requests in the first few hundred milliseconds.
		mu.Lock()
		before, seenBefore := len(acks), len(seen)
		mu.Unlock()
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			done, saw := len(acks)-before, len(seen)-seenBefore
			mu.Unlock()
			if done >= 40 && saw >= 1 {
				break
			}
		}
		p.kill()
		close(stop)
		wg.Wait()
		p = startProc(t, bin, dir)
	}
	if len(acks) < 100 {
		t.Fatalf("only %d acknowledged requests; the load did not run", len(acks))
	}
	t.Logf("%d acknowledged requests, %d cut off by kills", len(acks), len(unknown))

	// Every acknowledged request replays byte for byte.
	for _, a := range acks {
		status, resp, h, err := post(p.base, a.path, a.userKey, a.key, a.body)
		if err != nil || status != a.status || !bytes.Equal(resp, a.resp) || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s %s after crash: %d %s (replayed %q), originally %d %s; err %v", a.path, a.key, status, resp, h.Get("Idempotent-Replayed"), a.status, a.resp, err)
		}
	}
	// A request cut off by a kill either happened or did not; its retry
	// settles it exactly once.
	for _, u := range unknown {
		s1, r1, _, err := post(p.base, u.path, u.userKey, u.key, u.body)
		if err != nil || (s1 != 201 && s1 != 200 && s1 != 402 && s1 != 409) {
			t.Fatalf("retry of a cut-off request: %d %s %v", s1, r1, err)
		}
		s2, r2, _, _ := post(p.base, u.path, u.userKey, u.key, u.body)
		if s2 != s1 || !bytes.Equal(r1, r2) {
			t.Fatalf("second retry differs: %d %s vs %d %s", s1, r1, s2, r2)
		}
	}
	a = &api{t: t, base: p.base}
	r := a.ok(200, a.call("GET", "/v1/ledger/verify", op, "", nil))
	if r.body["ok"] != true {
		t.Fatalf("ledger after crashes: %s", r.raw)
	}
	checkLogAfterCrashes(t, p.base, op, seen)
	// Each wallet equals its top-up less what its payments hold or took.
	for _, key := range users {
		var spent int64
		after := ""
		for {
			path := "/v1/payments?limit=100"
			if after != "" {
				path += "&starting_after=" + after
			}
			l := a.ok(200, a.call("GET", path, key, "", nil))
			data := l.body["data"].([]any)
			for _, d := range data {
				pm := d.(map[string]any)
				switch pm["status"] {
				case "authorized":
					spent += int64(pm["amount"].(float64))
				case "captured", "refunded":
					spent += int64(pm["amount_captured"].(float64) - pm["amount_refunded"].(float64))
				}
				after = pm["id"].(string)
			}
			if l.body["has_more"] != true {
				break
			}
		}
		b := a.ok(200, a.call("GET", "/v1/balance", key, "", nil))
		avail := int64(b.body["balances"].([]any)[0].(map[string]any)["available"].(float64))
		if avail != 1_000_000-spent {
			t.Fatalf("wallet holds %d; its payments account for %d of 1000000", avail, spent)
		}
	}
}

// checkLogAfterCrashes checks the transparency log after the kills: the
// checkpoint now is consistent with every checkpoint published before, and
// an audit finds every payment's entries (no acknowledged change without
// its entry), their chains whole, and their sums equal to the ledger's.
func checkLogAfterCrashes(t *testing.T, base, op string, seen [][]byte) {
	t.Helper()
	ctx := t.Context()
	api := client.New(base, op)
	vkey, err := api.LogKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	note, err := api.LogCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now, err := tl.Open(note, vkey)
	if err != nil {
		t.Fatalf("checkpoint after the crashes: %v", err)
	}
	if len(seen) < 4 {
		t.Fatalf("only %d checkpoints were seen during the load", len(seen))
	}
	for _, n := range seen {
		c, err := tl.Open(n, vkey)
		if err != nil {
			t.Fatalf("a checkpoint published before a crash does not verify: %v", err)
		}
		if err := client.VerifyConsistency(ctx, api, vkey, n, note); err != nil {
			t.Fatalf("checkpoint of size %d (before a crash) and %d (after): %v", c.Size, now.Size, err)
		}
	}
	t.Logf("%d checkpoints seen before the crashes, all consistent with size %d; audit: %s", len(seen), now.Size, auditOK(t, base, op))
}

// auditOK audits the server at base (client.Audit, as paybound audit
// does) and returns its report.
func auditOK(t *testing.T, base, op string) string {
	t.Helper()
	rep, err := client.Audit(t.Context(), client.New(base, op), client.AuditOptions{})
	if err != nil {
		t.Fatalf("audit: %v (passed: %+v)", err, rep)
	}
	return fmt.Sprintf("%d checkpoints, last of size %d; %d payments in the log; %d cross-checked with the ledger (%d rechecked); ledger sound",
		rep.Checkpoints, rep.Checkpoint.Size, rep.LogPayments, rep.Payments, rep.Rechecked)
}
