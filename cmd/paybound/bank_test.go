package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/stepup"
	"github.com/paybound/paybound/internal/storetest"
)

// TestBankMultiProcess is Jepsen's bank test for Paybound: three real
// paybound processes (PAYBOUND_BANK_PROCS) share one PostgreSQL schema, and
// operator.key and log.key, and bankWorkers workers send random operations
// through random processes for PAYBOUND_BANK_DURATION (default 60s; at most
// PAYBOUND_BANK_OPS operations): agent payments under mandates with small
// budgets, per-payment limits, payment caps and confirm_above (automatic
// and manual capture, some holds expiring during the run), agent payments
// without a mandate, the users' own payments, approvals with a one-time
// code or a passkey, denials, full and partial captures, cancels by the
// merchant, the payer or the agent, full and partial refunds, top-ups,
// mandate replacements (revoke, then grant a new one), disputes and their
// resolutions. The workload is drawn from PAYBOUND_BANK_SEED (random when
// unset, always logged; the interleaving is the machine's, so a seed
// replays the mix of operations, not the exact schedule). Every POST
// carries an Idempotency-Key and is retried with it, a bounded number of
// times, after a connection error, a 503 or a 409 idempotency_in_flight.
// Every operation is recorded: its kind, the process of each attempt, the
// request, its invocation (the first attempt sent) and completion (the
// last answer read), and its outcome. The test and the processes run on
// one machine and read one clock, so the log entries' times and the
// operations' can be compared. When the load stops, holds past their
// expiry are settled (a cancel expires them) so that nothing moves while
// the checks read.
//
// It then checks, from the data rather than from the counters that are
// supposed to enforce the rules (see checkBank for each check):
//
//   - The transparency log, read from the database in commit order, is
//     replayed: every wallet and merchant account stays non-negative, and
//     every mandate's budget period stays within its budget and its payment
//     cap, after every entry, not only at the end; every payment under a
//     mandate is within its per-payment limit and allowed merchants. The
//     replay's balances must equal GET /v1/balance, its mandate usage the
//     payments' amounts and GET /v1/mandates/{id}.
//   - Every acknowledged operation is there exactly once: an
//     Idempotency-Key made at most one payment, refund or top-up; every
//     acknowledged payment is listed, with a status and amounts consistent
//     with what was acknowledged for it; no effect is in the log that no
//     operation could have caused.
//   - No payment was authorized (or made to wait for confirmation) under a
//     mandate by an operation invoked after that mandate's revoke was
//     acknowledged, and no approval invoked after it authorized one.
//   - Every decline was right at some instant between its invocation and
//     its completion (the model below).
//   - No request failed with an internal error (500), GET /v1/ledger/verify
//     is sound on every process, and `paybound audit` passes.
//
// Why commit order: on PostgreSQL every ledger batch locks the accounts it
// changes (SELECT … FOR UPDATE, first in its pipeline) and updates the
// mandate usage rows it changes before it inserts its log entries, whose
// seq comes from a sequence; two batches that touch the same account or
// usage row therefore get their seq in the order they commit, and within a
// batch entries are in the order the writer applied them. Replaying one
// account's or one usage row's entries in seq order is replaying the states
// the database went through.
//
// The decline model. Each effect on an account (a wallet or a merchant's
// account) or a mandate budget period is one log entry, linked to the
// operations that could have made it. It took effect at its commit, some
// instant no earlier than its operation's invocation and its entry's time
// (the writer's clock, read before the commit), and no later than the
// completion of an operation that acknowledged it (never bounded when none
// did: an expiry by the sweeper, an operation whose answer was lost). A
// decline of amount a made by an operation running over [inv, comp] is
// right if its condition can hold at some instant t in [inv, comp] in some
// placement of the effects. The check is conservative: it takes the most
// pessimistic state, where every effect that takes money (a hold, a
// reservation of budget) happened as early as it could and every effect
// that gives money back (a top-up, a release, a refund, a give-back) as
// late as it could, and minimizes over t. If even that state had room —
// available ≥ a for insufficient_funds; budget − spent ≥ a for
// mandate_budget_exhausted; payments < max_payments for
// mandate_max_payments_reached — no instant of the interval could justify
// the decline, and it is reported as false. mandate_revoked needs a revoke
// invoked before comp; mandate_amount_exceeded and
// mandate_merchant_not_allowed are checked exactly; a one-time code is
// refused only once a later step was used, or after its window. With
// PAYBOUND_BANK_PROCS=1 the same checks find none of the cross-process
// anomalies, which is how the model was checked (TestBankModelMinRoom checks
// its arithmetic).
//
// It needs PAYBOUND_TEST_POSTGRES_URL and PAYBOUND_BANK=1 (scripts/soak.sh
// and test.sh set both), so that `go test ./...` does not run it.
func TestBankMultiProcess(t *testing.T) {
	if os.Getenv("PAYBOUND_BANK") != "1" {
		t.Skip("set PAYBOUND_BANK=1 (and PAYBOUND_TEST_POSTGRES_URL) to run the multi-process bank test; scripts/soak.sh runs it")
	}
	db := storetest.PostgresURL(t)
	dur := bankEnvDuration(t, "PAYBOUND_BANK_DURATION", 60*time.Second)
	maxOps := bankEnvInt(t, "PAYBOUND_BANK_OPS", 200_000)
	// PAYBOUND_BANK_PROCS=1 checks the checker: one process must pass what
	// several must.
	procs := min(bankEnvInt(t, "PAYBOUND_BANK_PROCS", 3), 8)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PAYBOUND_BANK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PAYBOUND_BANK_SEED=%q: want an unsigned integer", s)
		}
		seed = v
	}
	t.Logf("bank: seed %d (replay the mix with PAYBOUND_BANK_SEED=%d), %d processes, duration %s, at most %d operations, %d workers",
		seed, seed, procs, dur, maxOps, bankWorkers)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bank: FAILED with seed %d; replay the mix with PAYBOUND_BANK=1 PAYBOUND_BANK_SEED=%d", seed, seed)
		}
	})

	b := startBank(t, db, seed, procs)
	b.setup()
	b.run(dur, int64(maxOps))
	b.settle()
	checkBank(t, b)
}

// Bounds of the workload.
const (
	bankWorkers   = 12  // concurrent operations at most
	bankUsers     = 4   // each with bankAgentsPer agents
	bankAgentsPer = 2   // each agent holds one live mandate at a time
	bankAttempts  = 6   // tries of one operation, with the same Idempotency-Key
	bankPool      = 400 // payments remembered per state, for later operations
	bankCurrency  = "USD"
	// bankShortHoldMargin: a hold that expires during the run is asked only
	// while the run has this much left, so that it has expired, and been
	// settled, before the final checks read anything.
	bankShortHoldMargin = 100 * time.Second
)

// bankRisk keeps risk control out of the test's way: it reviews or blocks
// only at scores nothing here reaches, and its velocity limits are the load
// tests'. What is tested is money, not risk scoring.
const bankRisk = `{"per_minute": 1000000000, "per_hour": 1000000000, "per_day": 1000000000, "decline_burst": 1000000000, "review_at": 100, "block_at": 101}`

func bankEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 60s or 10m", name, s)
	}
	return d
}

func bankEnvInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// bankOp is one operation of the history.
type bankOp struct {
	n      int    // order of invocation
	kind   string // what the workload meant: pay_mandate, capture_partial, …
	class  string // what it does: create, approve, deny, capture, cancel, refund, topup, grant, revoke, dispute, resolve
	worker int    // -1: setup and settling
	procs  []int  // the process each attempt went to
	key    string // Idempotency-Key
	path   string
	body   []byte
	// inv is when the first attempt was sent, comp when the last answer was
	// read (or the last attempt failed).
	inv, comp time.Time
	status    int    // HTTP status of the last answer; 0: none
	code      string // the error's code
	pstatus   string // the body's status
	raw       []byte
	// What the operation is about, from its request or its answer.
	payment, mandate, user, agent, merchant string
	refund, topup, dispute, compensation    string
	amount                                  int64
	step                                    int64 // the TOTP step an approval used (0: a passkey)
}

// outcome classes.
const (
	outOK       = "ok"       // 2xx: it happened
	outDeclined = "declined" // 402: a decline, recorded, nothing moved
	outFailed   = "failed"   // another 4xx: nothing happened
	outUnknown  = "unknown"  // no answer, a 5xx: it may or may not have happened
)

func (o *bankOp) outcome() string {
	switch {
	case o.status >= 200 && o.status < 300:
		return outOK
	case o.status == 402:
		return outDeclined
	case o.status == 409 && o.code == "idempotency_in_flight":
		return outUnknown
	case o.status >= 400 && o.status < 500:
		return outFailed
	}
	return outUnknown
}

// couldHaveActed: the operation may have made an effect.
func (o *bankOp) couldHaveActed() bool {
	out := o.outcome()
	return out == outOK || out == outUnknown
}

// label is how the operation is counted: its status and the body's status
// or error code.
func (o *bankOp) label() string {
	switch o.outcome() {
	case outUnknown:
		if o.status == 0 {
			return "no answer"
		}
		return fmt.Sprintf("%d %s (unknown)", o.status, o.code)
	case outOK:
		return strings.TrimSpace(fmt.Sprintf("%d %s", o.status, o.pstatus))
	}
	return fmt.Sprintf("%d %s", o.status, o.code)
}

func (o *bankOp) String() string {
	return fmt.Sprintf("op#%d %s via p%v key %s [%s, %s] %s %s → %s", o.n, o.kind, o.procs, o.key,
		o.inv.UTC().Format("15:04:05.000000"), o.comp.UTC().Format("15:04:05.000000"), o.path, truncate(o.body, 300), truncate(o.raw, 400))
}

// clip returns a copy of at most n bytes of b: the history keeps what it
// shows, not whole answers, so that a long soak's history fits in memory.
func clip(b []byte, n int) []byte {
	return slices.Clone(b[:min(len(b), n)])
}

func truncate(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

type bankUser struct {
	id, key string
	secret  []byte // TOTP
	auth    virtualwebauthn.Authenticator
	cred    virtualwebauthn.Credential
	agents  []*bankAgent

	mu       sync.Mutex
	lastStep int64 // the last TOTP step handed to an approval
}

// claimStep returns the current TOTP step for one approval, or false when
// another approval already has it: a code is accepted once.
func (u *bankUser) claimStep(now time.Time) (int64, bool) {
	step := now.Unix() / int64(stepup.TOTPStep/time.Second)
	u.mu.Lock()
	defer u.mu.Unlock()
	if step <= u.lastStep {
		return 0, false
	}
	u.lastStep = step
	return step, true
}

type bankAgent struct {
	id, key string
	user    *bankUser

	mu       sync.Mutex
	mandates []*bankMandate // oldest first; the last is the current one
}

type bankMandate struct {
	id          string
	agent       *bankAgent
	budget      int64
	period      pb.BudgetPeriod
	maxAmount   int64
	confirm     int64 // confirm_above; 0: never
	maxPayments int64 // 0: no cap
	merchants   []string
}

// periodKey names the budget period that a payment created at t uses.
func (m *bankMandate) periodKey(t time.Time) string {
	pm := pb.Mandate{Budget: pb.Budget{Amount: m.budget, Period: m.period}}
	return pm.PeriodKey(t)
}

type bankMerchant struct{ id, key, category string }

// livePay is what the workload remembers of a payment, to act on it later.
// It is a hint: another worker may have moved the payment since.
type livePay struct {
	id, cfm            string
	user               *bankUser
	agent              *bankAgent
	merchant           *bankMerchant
	mandate            *bankMandate
	amount             int64
	captured, refunded int64
}

type liveDispute struct {
	id     string
	pay    *livePay
	amount int64
}

// bank is the system under test and the workload's memory of it.
type bank struct {
	t     *testing.T
	seed  uint64
	procs []string // base URLs
	plogs []*procLog
	db    string
	op    string // the operator key
	hc    *http.Client
	rp    virtualwebauthn.RelyingParty

	users     []*bankUser
	agents    []*bankAgent
	merchants []*bankMerchant
	merchByID map[string]*bankMerchant
	deadline  time.Time
	// runStart and runEnd bound the workload, which invoked runOps
	// operations.
	runStart, runEnd time.Time
	runOps           int64

	opSeq  atomic.Int64 // operations invoked
	keySeq atomic.Int64

	mu         sync.Mutex // guards what follows
	history    []*bankOp
	mandates   map[string]*bankMandate
	confirming []*livePay
	authorized []*livePay
	captured   []*livePay
	disputes   []*liveDispute
	extra      map[string]int // calls outside the history (passkey options), by label
}

// startBank starts bankProcs processes on db, sharing the first one's
// operator.key and log.key.
func startBank(t *testing.T, db string, seed uint64, procs int) *bank {
	bin := buildBinary(t)
	b := &bank{t: t, seed: seed, db: db, mandates: map[string]*bankMandate{}, merchByID: map[string]*bankMerchant{},
		extra: map[string]int{},
		rp:    virtualwebauthn.RelyingParty{Name: "Paybound", ID: "pay.test", Origin: "https://pay.test"},
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 2 * bankWorkers, MaxConnsPerHost: 4 * bankWorkers, IdleConnTimeout: 30 * time.Second}},
	}
	t.Cleanup(b.hc.CloseIdleConnections)
	ps, op := startDeployment(t, bin, db, procs, func(dir string) []string {
		risk := filepath.Join(dir, "bank-risk.json")
		if err := os.WriteFile(risk, []byte(bankRisk), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"--risk-config", risk, "--fee-bps", "250", "--passkey-rp-id", b.rp.ID, "--passkey-origin", b.rp.Origin}
	})
	b.op = op
	for _, p := range ps {
		b.procs, b.plogs = append(b.procs, p.base), append(b.plogs, p.log)
	}
	return b
}

// newOp starts recording an operation.
func (b *bank) newOp(kind, class string, worker int) *bankOp {
	return &bankOp{kind: kind, class: class, worker: worker, n: int(b.opSeq.Add(1)),
		key: fmt.Sprintf("bank-%d-%d", b.seed, b.keySeq.Add(1))}
}

// respBody is the part of any answer the test reads.
type respBody struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	AmountCaptured int64  `json:"amount_captured"`
	Amount         int64  `json:"amount"`
	Confirmation   *struct {
		ID string `json:"id"`
	} `json:"confirmation"`
	Resolution *struct {
		Amount         int64  `json:"amount"`
		RefundID       string `json:"refund_id"`
		CompensationID string `json:"compensation_id"`
	} `json:"resolution"`
	Error *struct {
		Code      string `json:"code"`
		PaymentID string `json:"payment_id"`
	} `json:"error"`
}

// send runs op: method path as the holder of key with body, each attempt
// through a random process (first through first, when it is not negative),
// retried with the same Idempotency-Key after a connection error, a 503 or
// a 409 idempotency_in_flight, at most bankAttempts times. It records op in
// the history and returns the answer's body.
func (b *bank) send(rng *rand.Rand, op *bankOp, first int, method, path, key string, body any) respBody {
	op.path = path
	var j []byte
	if body != nil {
		var err error
		j, err = json.Marshal(body)
		if err != nil {
			b.t.Errorf("couldn't encode %v: %v", body, err)
		}
		op.body = clip(j, 400) // kept to be shown, not sent again
	}
	var r respBody
	op.inv = time.Now()
	for attempt := range bankAttempts {
		p := first
		if p < 0 || attempt > 0 {
			p = rng.IntN(len(b.procs))
		}
		op.procs = append(op.procs, p)
		status, hdr, raw, err := b.do(context.Background(), p, method, path, key, op.key, j)
		op.comp = time.Now()
		op.status, op.raw, op.code, op.pstatus = status, clip(raw, 600), "", ""
		r = respBody{}
		if err == nil {
			_ = json.Unmarshal(raw, &r)
			op.pstatus = r.Status
			if r.Error != nil {
				op.code = r.Error.Code
				op.pstatus = ""
			}
		}
		retry := err != nil || status == http.StatusServiceUnavailable || (status == http.StatusConflict && op.code == "idempotency_in_flight")
		if !retry {
			break
		}
		if attempt+1 < bankAttempts {
			wait := time.Duration(20<<attempt) * time.Millisecond
			if s, _ := strconv.Atoi(hdr.Get("Retry-After")); s > 0 {
				wait = max(wait, min(time.Duration(s)*time.Second, time.Second))
			}
			time.Sleep(wait + time.Duration(rng.IntN(20))*time.Millisecond)
		}
	}
	b.mu.Lock()
	b.history = append(b.history, op)
	b.mu.Unlock()
	return r
}

func (b *bank) do(ctx context.Context, proc int, method, path, key, idem string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.procs[proc]+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if method == http.MethodPost && idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return res.StatusCode, res.Header, raw, nil
}

// must sends a setup call (no Idempotency-Key when idem is false) and
// fails the test unless it answers want.
func (b *bank) must(want int, method, path, key string, idem bool, body any) []byte {
	b.t.Helper()
	var j []byte
	if body != nil {
		j, _ = json.Marshal(body)
	}
	k := ""
	if idem {
		k = fmt.Sprintf("bank-%d-setup-%d", b.seed, b.keySeq.Add(1))
	}
	var status int
	var raw []byte
	var err error
	for attempt := range bankAttempts {
		status, _, raw, err = b.do(context.Background(), attempt%len(b.procs), method, path, key, k, j)
		if err == nil && status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
	}
	if err != nil || status != want {
		b.t.Fatalf("%s %s: %d %v %s; want %d", method, path, status, err, raw, want)
	}
	return raw
}

// getJSON reads path as key into v, failing the test on any error.
func (b *bank) getJSON(proc int, path, key string, v any) {
	b.t.Helper()
	raw := b.mustAt(proc, path, key)
	if err := json.Unmarshal(raw, v); err != nil {
		b.t.Fatalf("GET %s: %v: %s", path, err, truncate(raw, 300))
	}
}

func (b *bank) mustAt(proc int, path, key string) []byte {
	b.t.Helper()
	var status int
	var raw []byte
	var err error
	for attempt := range bankAttempts {
		status, _, raw, err = b.do(context.Background(), proc, "GET", path, key, "", nil)
		if err == nil && status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
	}
	if err != nil || status != 200 {
		b.t.Fatalf("GET %s on p%d: %d %v %s", path, proc, status, err, truncate(raw, 300))
	}
	return raw
}

// list reads every item of a list endpoint, page by page.
func listAll[T any](b *bank, path, key string, id func(T) string) []T {
	var all []T
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			b.t.Fatalf("%s: the list does not end", path)
		}
		p := path + "?limit=100"
		if strings.Contains(path, "?") {
			p = path + "&limit=100"
		}
		if after != "" {
			p += "&starting_after=" + after
		}
		var page struct {
			Data    []T  `json:"data"`
			HasMore bool `json:"has_more"`
		}
		b.getJSON(pages%len(b.procs), p, key, &page)
		all = append(all, page.Data...)
		if !page.HasMore || len(page.Data) == 0 {
			return all
		}
		after = id(page.Data[len(page.Data)-1])
	}
}

// setup creates the merchants, the users (each with a one-time-code factor,
// a passkey and a funded wallet), their agents and a mandate for each.
func (b *bank) setup() {
	t := b.t
	rng := rand.New(rand.NewPCG(b.seed, 0))
	for i, c := range []string{"food", "books", "general"} {
		var m struct {
			ID  string `json:"id"`
			Key string `json:"api_key"`
		}
		raw := b.must(201, "POST", "/v1/merchants", b.op, true, map[string]any{"name": fmt.Sprintf("shop %d", i), "category": c})
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		mc := &bankMerchant{id: m.ID, key: m.Key, category: c}
		b.merchants = append(b.merchants, mc)
		b.merchByID[mc.id] = mc
	}
	for i := range bankUsers {
		var u struct {
			ID  string `json:"id"`
			Key string `json:"api_key"`
		}
		if err := json.Unmarshal(b.must(201, "POST", "/v1/users", b.op, true, map[string]any{"name": fmt.Sprintf("user %d", i)}), &u); err != nil {
			t.Fatal(err)
		}
		bu := &bankUser{id: u.ID, key: u.Key}
		// A one-time-code factor, activated with the current code.
		var e struct {
			Secret string `json:"secret"`
		}
		json.Unmarshal(b.must(201, "POST", "/v1/totp", bu.key, true, nil), &e)
		secret, err := stepup.DecodeTOTPSecret(e.Secret)
		if err != nil {
			t.Fatalf("TOTP secret %q: %v", e.Secret, err)
		}
		bu.secret = secret
		now := time.Now()
		step, _ := bu.claimStep(now)
		b.must(200, "POST", "/v1/totp/verify", bu.key, true, map[string]any{"code": stepup.TOTPCode(secret, time.Unix(step*30, 0))})
		// A passkey, on a virtual authenticator.
		bu.auth = virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(bu.id)})
		opts := b.must(200, "POST", "/v1/passkeys/registration", bu.key, false, nil)
		ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
		if err != nil {
			t.Fatalf("passkey creation options: %v %s", err, opts)
		}
		bu.cred = newCredential(t)
		att := virtualwebauthn.CreateAttestationResponse(b.rp, bu.auth, bu.cred, *ao)
		b.must(201, "POST", "/v1/passkeys", bu.key, true, map[string]any{"credential": json.RawMessage(att)})
		bu.auth.AddCredential(bu.cred)
		b.users = append(b.users, bu)
		for j := range bankAgentsPer {
			var a struct {
				ID  string `json:"id"`
				Key string `json:"api_key"`
			}
			json.Unmarshal(b.must(201, "POST", "/v1/agents", bu.key, true, map[string]any{"name": fmt.Sprintf("agent %d.%d", i, j)}), &a)
			ag := &bankAgent{id: a.ID, key: a.Key, user: bu}
			bu.agents = append(bu.agents, ag)
			b.agents = append(b.agents, ag)
		}
	}
	// Money and mandates go through the history: the checks need them.
	for _, u := range b.users {
		b.topup(rng, -1, u, 5000)
		for _, a := range u.agents {
			if b.grant(rng, -1, a) == nil {
				t.Fatalf("couldn't grant the first mandate of %s", a.id)
			}
		}
	}
}

// run runs the workload until dur has passed or maxOps operations were
// invoked.
func (b *bank) run(dur time.Duration, maxOps int64) {
	b.runStart = time.Now()
	b.deadline = b.runStart.Add(dur)
	before := b.opSeq.Load()
	var wg sync.WaitGroup
	for w := range bankWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(b.seed, uint64(w)+1))
			for time.Now().Before(b.deadline) && b.opSeq.Load() < maxOps {
				b.step(rng, w)
			}
		}()
	}
	wg.Wait()
	b.runEnd, b.runOps = time.Now(), b.opSeq.Load()-before
}

// step runs one random operation.
func (b *bank) step(rng *rand.Rand, w int) {
	switch n := rng.IntN(100); {
	case n < 32:
		b.payMandate(rng, w, false)
	case n < 34:
		b.payMandate(rng, w, true)
	case n < 38:
		b.payAgent(rng, w)
	case n < 44:
		b.payUser(rng, w)
	case n < 54:
		b.approve(rng, w)
	case n < 56:
		b.deny(rng, w)
	case n < 66:
		b.capture(rng, w)
	case n < 72:
		b.cancel(rng, w)
	case n < 80:
		b.refund(rng, w)
	case n < 86:
		u := b.users[rng.IntN(len(b.users))]
		b.topup(rng, w, u, 300+int64(rng.IntN(1700)))
	case n < 88:
		b.replaceMandate(rng, w)
	case n < 94:
		b.openDispute(rng, w)
	default:
		b.resolveDispute(rng, w)
	}
}

// take removes and returns a random element of *pool, or nil.
func take[T any](b *bank, rng *rand.Rand, pool *[]*T) *T {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(*pool) == 0 {
		return nil
	}
	i := rng.IntN(len(*pool))
	v := (*pool)[i]
	(*pool)[i] = (*pool)[len(*pool)-1]
	*pool = (*pool)[:len(*pool)-1]
	return v
}

// put adds v to *pool, dropping the oldest when it is full.
func put[T any](b *bank, pool *[]*T, v *T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(*pool) >= bankPool {
		*pool = (*pool)[1:]
	}
	*pool = append(*pool, v)
}

// remember files a payment the answer describes under its status.
func (b *bank) remember(p *livePay, status string) {
	switch status {
	case "requires_confirmation":
		put(b, &b.confirming, p)
	case "authorized":
		put(b, &b.authorized, p)
	case "captured":
		p.captured = p.amount
		put(b, &b.captured, p)
	}
}

// createPay sends one payment request and records what it is about.
func (b *bank) createPay(rng *rand.Rand, op *bankOp, first int, key string, p *livePay, body map[string]any) respBody {
	op.amount, op.user, op.merchant = p.amount, p.user.id, p.merchant.id
	if p.agent != nil {
		op.agent = p.agent.id
	}
	if p.mandate != nil {
		op.mandate = p.mandate.id
	}
	r := b.send(rng, op, first, "POST", "/v1/payments", key, body)
	switch {
	case op.outcome() == outOK:
		op.payment = r.ID
	case r.Error != nil:
		op.payment = r.Error.PaymentID
	}
	if op.outcome() == outOK {
		p.id = r.ID
		if r.Confirmation != nil {
			p.cfm = r.Confirmation.ID
		}
		b.remember(p, r.Status)
	}
	return r
}

func (b *bank) payBody(rng *rand.Rand, op *bankOp, p *livePay) map[string]any {
	body := map[string]any{"amount": p.amount, "currency": bankCurrency, "merchant_id": p.merchant.id,
		"description": op.kind, "metadata": map[string]string{"bank_key": op.key}}
	if p.mandate != nil {
		body["mandate_id"] = p.mandate.id
	}
	if rng.IntN(2) == 0 {
		body["capture_method"] = "manual"
		if rng.IntN(10) == 0 && time.Until(b.deadline) > bankShortHoldMargin {
			// A hold that expires during the run: the sweeper (or the next
			// operation on it) releases it, from whichever process.
			body["authorization_expires_at"] = time.Now().Add(61*time.Second + time.Duration(rng.IntN(30))*time.Second).UTC().Format(time.RFC3339)
		}
	}
	return body
}

// payMandate: an agent pays under its current mandate (sometimes one it
// held before, likely revoked), for an amount around the mandate's limit;
// dup sends the same request, with the same key, to two processes at once.
func (b *bank) payMandate(rng *rand.Rand, w int, dup bool) {
	a := b.agents[rng.IntN(len(b.agents))]
	a.mu.Lock()
	m := a.mandates[len(a.mandates)-1]
	if rng.IntN(10) == 0 { // one held before, likely revoked
		m = a.mandates[rng.IntN(len(a.mandates))]
	}
	a.mu.Unlock()
	amount := 50 + int64(rng.IntN(int(m.maxAmount)+100)) // over max_amount, now and then
	p := &livePay{user: a.user, agent: a, mandate: m, merchant: b.merchants[rng.IntN(len(b.merchants))], amount: amount}
	kind := "pay_mandate"
	if dup {
		kind = "pay_dup"
	}
	op := b.newOp(kind, "create", w)
	body := b.payBody(rng, op, p)
	if !dup {
		b.createPay(rng, op, -1, a.key, p, body)
		return
	}
	twin := *op
	twin.n = int(b.opSeq.Add(1))
	first := rng.IntN(len(b.procs))
	q := *p
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r2 := rand.New(rand.NewPCG(b.seed, uint64(twin.n)<<8))
		b.createPay(r2, &twin, (first+1)%len(b.procs), a.key, &q, body)
	}()
	b.createPay(rng, op, first, a.key, p, body)
	wg.Wait()
}

// payAgent: an agent pays without a mandate; the payment waits for its
// user.
func (b *bank) payAgent(rng *rand.Rand, w int) {
	a := b.agents[rng.IntN(len(b.agents))]
	p := &livePay{user: a.user, agent: a, merchant: b.merchants[rng.IntN(len(b.merchants))], amount: 100 + int64(rng.IntN(900))}
	op := b.newOp("pay_agent", "create", w)
	b.createPay(rng, op, -1, a.key, p, b.payBody(rng, op, p))
}

// payUser: a user pays with their own key.
func (b *bank) payUser(rng *rand.Rand, w int) {
	u := b.users[rng.IntN(len(b.users))]
	p := &livePay{user: u, merchant: b.merchants[rng.IntN(len(b.merchants))], amount: 100 + int64(rng.IntN(900))}
	op := b.newOp("pay_user", "create", w)
	b.createPay(rng, op, -1, u.key, p, b.payBody(rng, op, p))
}

// approve: the user approves a waiting payment with a one-time code when
// the current step is free, else with a passkey.
func (b *bank) approve(rng *rand.Rand, w int) {
	p := take(b, rng, &b.confirming)
	if p == nil {
		b.payMandate(rng, w, false)
		return
	}
	u := p.user
	var op *bankOp
	var body map[string]any
	if step, ok := claimIf(rng.IntN(2) == 0, u); ok {
		op = b.newOp("approve_totp", "approve", w)
		op.step = step
		body = map[string]any{"totp": stepup.TOTPCode(u.secret, time.Unix(step*30, 0))}
	} else {
		j, _ := json.Marshal(map[string]any{"confirmation_id": p.cfm})
		status, _, raw, err := b.do(context.Background(), rng.IntN(len(b.procs)), "POST", "/v1/passkeys/assertion", u.key, "", j)
		if err != nil || status != 200 {
			b.count(fmt.Sprintf("passkey options: %d %v %s", status, err, errCode(raw)))
			return // the payment no longer waits, most likely
		}
		ro, err := virtualwebauthn.ParseAssertionOptions(string(raw))
		if err != nil {
			b.t.Errorf("passkey request options: %v %s", err, truncate(raw, 300))
			return
		}
		op = b.newOp("approve_passkey", "approve", w)
		body = map[string]any{"passkey": json.RawMessage(virtualwebauthn.CreateAssertionResponse(b.rp, u.auth, u.cred, *ro))}
	}
	op.payment, op.user, op.amount, op.merchant = p.id, u.id, p.amount, p.merchant.id
	if p.mandate != nil {
		op.mandate = p.mandate.id
	}
	r := b.send(rng, op, -1, "POST", "/v1/confirmations/"+p.cfm+"/approve", u.key, body)
	switch {
	case op.outcome() == outOK:
		b.remember(p, r.Status)
	case op.outcome() == outUnknown || op.code == "totp_invalid":
		put(b, &b.confirming, p) // try again later
	}
}

func errCode(raw []byte) string {
	var r respBody
	if json.Unmarshal(raw, &r) == nil && r.Error != nil {
		return r.Error.Code
	}
	return ""
}

// count counts a call outside the history.
func (b *bank) count(label string) {
	b.mu.Lock()
	b.extra[label]++
	b.mu.Unlock()
}

// deny: the user refuses a waiting payment.
func (b *bank) deny(rng *rand.Rand, w int) {
	p := take(b, rng, &b.confirming)
	if p == nil {
		b.payAgent(rng, w)
		return
	}
	op := b.newOp("deny", "deny", w)
	op.payment, op.user = p.id, p.user.id
	b.send(rng, op, -1, "POST", "/v1/confirmations/"+p.cfm+"/deny", p.user.key, nil)
	if op.outcome() == outUnknown {
		put(b, &b.confirming, p)
	}
}

// capture: the merchant captures a hold, in full or in part.
func (b *bank) capture(rng *rand.Rand, w int) {
	p := take(b, rng, &b.authorized)
	if p == nil {
		b.payMandate(rng, w, false)
		return
	}
	op := b.newOp("capture_full", "capture", w)
	var body map[string]any
	if rng.IntN(5) < 2 {
		op.kind = "capture_partial"
		op.amount = 1 + int64(rng.IntN(int(p.amount)))
		body = map[string]any{"amount": op.amount}
	}
	op.payment, op.merchant = p.id, p.merchant.id
	r := b.send(rng, op, -1, "POST", "/v1/payments/"+p.id+"/capture", p.merchant.key, body)
	switch op.outcome() {
	case outOK:
		op.amount = r.AmountCaptured
		p.captured = r.AmountCaptured
		put(b, &b.captured, p)
	case outUnknown:
		put(b, &b.authorized, p)
	}
}

// cancel: the merchant, the payer or the agent cancels a hold, or a
// payment waiting for confirmation.
func (b *bank) cancel(rng *rand.Rand, w int) {
	pool := &b.authorized
	if rng.IntN(4) == 0 {
		pool = &b.confirming
	}
	p := take(b, rng, pool)
	if p == nil {
		b.payUser(rng, w)
		return
	}
	key, who := p.merchant.key, "merchant"
	switch rng.IntN(3) {
	case 1:
		key, who = p.user.key, "payer"
	case 2:
		if p.agent != nil {
			key, who = p.agent.key, "agent"
		}
	}
	op := b.newOp("cancel_by_"+who, "cancel", w)
	op.payment, op.user, op.merchant = p.id, p.user.id, p.merchant.id
	b.send(rng, op, -1, "POST", "/v1/payments/"+p.id+"/cancel", key, nil)
	if op.outcome() == outUnknown {
		put(b, pool, p)
	}
}

// refund: the merchant refunds a captured payment, in full or in part.
func (b *bank) refund(rng *rand.Rand, w int) {
	p := take(b, rng, &b.captured)
	if p == nil {
		b.payUser(rng, w)
		return
	}
	op := b.newOp("refund_full", "refund", w)
	var body map[string]any
	if left := p.captured - p.refunded; left > 1 && rng.IntN(2) == 0 {
		op.kind = "refund_partial"
		op.amount = 1 + int64(rng.IntN(int(left)-1))
		body = map[string]any{"amount": op.amount, "reason": "part"}
	}
	op.payment, op.merchant, op.user = p.id, p.merchant.id, p.user.id
	r := b.send(rng, op, -1, "POST", "/v1/payments/"+p.id+"/refunds", p.merchant.key, body)
	switch op.outcome() {
	case outOK:
		op.refund, op.amount = r.ID, r.Amount
		p.refunded += r.Amount
		if p.refunded < p.captured {
			put(b, &b.captured, p)
		}
	case outUnknown:
		put(b, &b.captured, p)
	}
}

// topup funds u's wallet.
func (b *bank) topup(rng *rand.Rand, w int, u *bankUser, amount int64) {
	op := b.newOp("topup", "topup", w)
	op.user, op.amount = u.id, amount
	r := b.send(rng, op, -1, "POST", "/v1/topups", u.key, map[string]any{"amount": amount, "currency": bankCurrency})
	if op.outcome() == outOK {
		op.topup = r.ID
	} else if w < 0 {
		b.t.Fatalf("setup top-up: %s", op)
	}
}

// grant gives agent a new mandate with random limits; it returns nil when
// the grant was not acknowledged.
func (b *bank) grant(rng *rand.Rand, w int, a *bankAgent) *bankMandate {
	m := &bankMandate{agent: a, budget: 2000 + int64(rng.IntN(4001)), period: pb.PeriodTotal}
	m.maxAmount = 500 + int64(rng.IntN(1001))
	if rng.IntN(10) < 3 {
		m.period = pb.PeriodDay
	}
	if rng.IntN(10) < 4 {
		m.confirm = 300 + int64(rng.IntN(int(m.maxAmount)-350))
	}
	if rng.IntN(10) < 3 {
		m.maxPayments = 4 + int64(rng.IntN(12))
	}
	body := map[string]any{"agent_id": a.id, "description": "bank test: small purchases", "currency": bankCurrency,
		"max_amount": m.maxAmount, "budget": map[string]any{"amount": m.budget, "period": m.period}}
	if rng.IntN(10) < 3 {
		i := rng.IntN(len(b.merchants))
		m.merchants = []string{b.merchants[i].id, b.merchants[(i+1)%len(b.merchants)].id}
		body["merchant_ids"] = m.merchants
	}
	if m.confirm > 0 {
		body["confirm_above"] = m.confirm
	}
	if m.maxPayments > 0 {
		body["max_payments"] = m.maxPayments
	}
	op := b.newOp("grant", "grant", w)
	op.agent, op.user = a.id, a.user.id
	r := b.send(rng, op, -1, "POST", "/v1/mandates", a.user.key, body)
	if op.outcome() != outOK {
		return nil
	}
	m.id, op.mandate = r.ID, r.ID
	b.mu.Lock()
	b.mandates[m.id] = m
	b.mu.Unlock()
	a.mu.Lock()
	a.mandates = append(a.mandates, m)
	a.mu.Unlock()
	return m
}

// replaceMandate: the user revokes an agent's current mandate and grants it
// a new one.
func (b *bank) replaceMandate(rng *rand.Rand, w int) {
	a := b.agents[rng.IntN(len(b.agents))]
	a.mu.Lock()
	m := a.mandates[len(a.mandates)-1]
	a.mu.Unlock()
	op := b.newOp("revoke", "revoke", w)
	op.mandate, op.agent, op.user = m.id, a.id, a.user.id
	b.send(rng, op, -1, "POST", "/v1/mandates/"+m.id+"/revoke", a.user.key, nil)
	b.grant(rng, w, a)
}

// openDispute: the payer disputes a captured payment.
func (b *bank) openDispute(rng *rand.Rand, w int) {
	p := take(b, rng, &b.captured)
	if p == nil {
		b.payUser(rng, w)
		return
	}
	reasons := []string{"not_as_intended", "unauthorized", "merchant_error", "duplicate", "other"}
	op := b.newOp("dispute_open", "dispute", w)
	op.payment, op.user, op.merchant = p.id, p.user.id, p.merchant.id
	r := b.send(rng, op, -1, "POST", "/v1/payments/"+p.id+"/disputes", p.user.key,
		map[string]any{"reason": reasons[rng.IntN(len(reasons))], "details": "bank test"})
	switch op.outcome() {
	case outOK:
		op.dispute = r.ID
		put(b, &b.disputes, &liveDispute{id: r.ID, pay: p, amount: r.Amount})
	case outUnknown:
		put(b, &b.captured, p)
	}
}

// resolveDispute: the operator resolves an open dispute.
func (b *bank) resolveDispute(rng *rand.Rand, w int) {
	d := take(b, rng, &b.disputes)
	if d == nil {
		b.openDispute(rng, w)
		return
	}
	body := map[string]any{}
	kind := ""
	switch n := rng.IntN(20); {
	case n < 5:
		kind, body["outcome"], body["liable_party"] = "resolve_reject", "reject", []string{"user", "merchant"}[rng.IntN(2)]
	case n < 10 || d.amount < 2:
		kind, body["outcome"] = "resolve_full", "refund_full"
	default:
		kind, body["outcome"] = "resolve_partial", "refund_partial"
		body["amount"] = 1 + int64(rng.IntN(int(d.amount)-1))
	}
	if body["liable_party"] == nil {
		liable := []string{"merchant", "merchant", "platform", "agent_operator"}[rng.IntN(4)]
		body["liable_party"] = liable
		kind += "_" + liable
	}
	op := b.newOp(kind, "resolve", w)
	op.dispute, op.payment, op.user, op.merchant = d.id, d.pay.id, d.pay.user.id, d.pay.merchant.id
	if a, ok := body["amount"].(int64); ok {
		op.amount = a
	}
	r := b.send(rng, op, -1, "POST", "/v1/disputes/"+d.id+"/resolve", b.op, body)
	switch op.outcome() {
	case outOK:
		if r.Resolution != nil {
			op.refund, op.compensation, op.amount = r.Resolution.RefundID, r.Resolution.CompensationID, r.Resolution.Amount
		}
	case outUnknown:
		put(b, &b.disputes, d)
	}
}

// settle ends what the workload left moving on its own: holds whose
// authorization has run out are expired by a cancel (which expires them
// and answers 409) rather than by the sweeper while the checks read.
func (b *bank) settle() {
	type pay struct {
		ID         string     `json:"id"`
		Status     string     `json:"status"`
		MerchantID string     `json:"merchant_id"`
		Expires    *time.Time `json:"authorization_expires_at"`
	}
	rng := rand.New(rand.NewPCG(b.seed, 1<<40))
	for _, p := range listAll(b, "/v1/payments", b.op, func(p pay) string { return p.ID }) {
		if p.Status != "authorized" || p.Expires == nil || time.Until(*p.Expires) > 0 {
			continue
		}
		op := b.newOp("settle_expired", "cancel", -1)
		op.payment, op.merchant = p.ID, p.MerchantID
		b.send(rng, op, -1, "POST", "/v1/payments/"+p.ID+"/cancel", b.merchByID[p.MerchantID].key, nil)
	}
	// Place every entry in the tree, on every process.
	for i := range b.procs {
		b.mustAt(i, "/v1/log/checkpoint", "")
	}
}

// ops returns the history in invocation order.
func (b *bank) ops() []*bankOp {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := slices.Clone(b.history)
	slices.SortFunc(h, func(x, y *bankOp) int { return x.n - y.n })
	return h
}

// claimIf claims u's current TOTP step when want is true.
func claimIf(want bool, u *bankUser) (int64, bool) {
	if !want {
		return 0, false
	}
	return u.claimStep(time.Now())
}
