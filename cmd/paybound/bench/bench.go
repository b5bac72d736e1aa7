// Package bench is `paybound bench`: a load generator that measures the
// ledger's batch writer (bench ledger) and the payment path over HTTP
// (bench payments), printing one JSON line per figure.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
	"github.com/paybound/paybound/internal/httpsig"
	"github.com/paybound/paybound/internal/ledger"
)

// Server is a server that Env.StartServer began for a bench, in this
// process or (ServerConfig.Process) as a process of its own.
type Server struct {
	URL         string // http://127.0.0.1:<port>
	OperatorKey string // its operator's API key
	// Usage reads what the server has used so far.
	Usage func() (Usage, error)
	Close func() error // stops it
}

// Usage is what a server has used since it started: its ledger's batches
// and time in Store.Commit, and, for a server in a process of its own, the
// CPU time and the bytes written to storage by that process. A server in
// the bench's own process shares its CPU with the load generator, so CPU
// is 0 (unknown) there, and DiskWrites are the whole process's.
type Usage struct {
	Batches    int64
	CommitTime time.Duration
	CPU        time.Duration
	DiskWrites int64
}

// sub is u less an earlier reading.
func (u Usage) sub(before Usage) Usage {
	return Usage{Batches: u.Batches - before.Batches, CommitTime: u.CommitTime - before.CommitTime,
		CPU: u.CPU - before.CPU, DiskWrites: u.DiskWrites - before.DiskWrites}
}

// report adds the figures of u, over elapsed seconds and n payments (or
// checkouts), to out: batches and commit_busy, the share of the run the
// commit stage spent writing (near 1, the store is the bottleneck); the
// server's CPU and disk writes per payment where they are known
// (PostgreSQL's disk writes are its server's, not ours).
func (u Usage) report(out map[string]any, elapsed float64, n int64, unit string, db string) {
	out["batches"] = u.Batches
	out["commit_busy"] = u.CommitTime.Seconds() / elapsed
	if n <= 0 {
		return
	}
	if u.CPU > 0 {
		out["server_cpu_us_per_"+unit] = u.CPU.Microseconds() / n
	}
	if u.DiskWrites > 0 && !cmdline.IsPostgres(db) {
		out["disk_bytes_per_"+unit] = u.DiskWrites / n
	}
}

// ServerConfig is what bench payments asks of the server it starts: its
// data directory and database (--db, "" for SQLite in DataDir), a risk
// configuration file (LoadRiskConfig), and the most ledger operations per
// commit (0: the server's default).
type ServerConfig struct {
	DataDir, DB, RiskConfig string
	MaxBatch                int
	// Process runs the server as a process of its own (paybound serve),
	// so that its CPU and disk writes are measured apart from the load's.
	Process bool
	// WebhookAllowHosts are the hosts its webhooks may deliver to over
	// http:// and at private addresses (bench webhooks: 127.0.0.1).
	WebhookAllowHosts []string
}

// Env is what the load generator takes from the program that composes
// the server, so that it knows no store and no server of its own.
type Env struct {
	// OpenStore opens the store db names: a postgres:// URL, or else a
	// SQLite file. bench ledger measures the ledger on it.
	OpenStore func(ctx context.Context, db string) (pb.Store, error)
	// StartServer starts a server as cfg says, with the sandbox on (the
	// payers top their wallets up), listening on 127.0.0.1:0 and logging
	// nowhere; on error it has stopped what it began. bench payments loads
	// it unless --url names a server.
	StartServer func(ctx context.Context, cfg ServerConfig) (*Server, error)
}

// Run runs `paybound bench ledger|payments|acp|webhooks` with args (the arguments after
// bench), printing one JSON line per figure to stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: paybound bench ledger|payments|acp|webhooks [flags]")
		return cmdline.ErrUsage
	}
	switch args[0] {
	case "ledger":
		return benchLedger(ctx, args[1:], stdout, stderr, env)
	case "webhooks":
		return benchWebhooks(ctx, args[1:], stdout, stderr, env)
	case "payments":
		return benchPayments(ctx, args[1:], stdout, stderr, env)
	case "acp":
		return benchACP(ctx, args[1:], stdout, stderr, env)
	}
	return fmt.Errorf("unknown benchmark %q: use ledger, payments, acp or webhooks", args[0])
}

// cpuProfile starts a CPU profile of this process into the file at path
// (none when path is empty) and returns what stops it.
func cpuProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func emit(w io.Writer, v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(w, string(b))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ledgerBench is a run of bench ledger: its flags and where it writes.
type ledgerBench struct {
	hot, uniform, baseline bool
	dur                    time.Duration
	clients, accounts      int
	dir, db                string
}

func benchLedger(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	var b ledgerBench
	fs := flag.NewFlagSet("paybound bench ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.UsageFor(fs, stderr, "paybound bench ledger [flags]")
	fs.BoolVar(&b.hot, "hot", false, "only the hot-account run")
	fs.BoolVar(&b.uniform, "uniform", false, "only the uniform-accounts run")
	fs.DurationVar(&b.dur, "duration", 5*time.Second, "how long each run submits")
	fs.IntVar(&b.clients, "clients", 2000, "concurrent submitters")
	fs.IntVar(&b.accounts, "accounts", 10_000, "accounts in play")
	fs.StringVar(&b.dir, "data", "", "directory for the benchmark database (default: a temporary one, removed after)")
	fs.BoolVar(&b.baseline, "baseline", true, "also run one transaction per transfer and report the speedup")
	fs.StringVar(&b.db, "db", "", "a postgres:// URL to measure PostgreSQL (default: SQLite in --data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if b.clients < 1 || b.clients > 100_000 || b.accounts < 2 || b.accounts > 10_000_000 || b.dur <= 0 {
		return errors.New("bench ledger: need 1 <= clients <= 100000, 2 <= accounts <= 10000000 and a positive duration")
	}
	runs := []bool{false, true}
	if b.hot != b.uniform {
		runs = []bool{b.hot}
	}
	if b.dir == "" {
		tmp, err := os.MkdirTemp("", "paybound-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		b.dir = tmp
	}
	for _, h := range runs {
		out, err := b.report(ctx, env, h)
		if err != nil {
			return err
		}
		emit(stdout, out)
	}
	return nil
}

// report runs the hot or the uniform load, and its baseline if asked,
// and returns the figures to print.
func (b *ledgerBench) report(ctx context.Context, env Env, hot bool) (map[string]any, error) {
	storeName, durable := "sqlite", "synchronous=FULL"
	if cmdline.IsPostgres(b.db) {
		storeName, durable = "postgres", "the server's fsync and synchronous_commit"
	}
	mode := "uniform"
	if hot {
		mode = "hot"
	}
	res, err := b.run(ctx, env, mode, hot, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"bench": "ledger", "store": storeName, "durable": durable, "accounts": mode,
		"clients": b.clients, "transfers": res.Transfers, "seconds": res.Seconds, "transfers_per_sec": int64(res.TransfersPerSec),
		"p50_ms": ms(res.P50), "p99_ms": ms(res.P99), "batches": res.Batches}
	if b.baseline {
		// The same load with one transaction and fsync per transfer, in
		// this run, on this machine: the ratio is what batching buys.
		base, err := b.run(ctx, env, mode+"-baseline", hot, 1)
		if err != nil {
			return nil, err
		}
		out["baseline_transfers_per_sec"] = int64(base.TransfersPerSec)
		out["speedup"] = math.Round(res.TransfersPerSec/base.TransfersPerSec*10) / 10
	}
	return out, nil
}

// run measures one load on a fresh writer: on SQLite in its own file
// named after the run, or on the PostgreSQL database --db names.
func (b *ledgerBench) run(ctx context.Context, env Env, name string, hot bool, maxBatch int) (ledger.BenchResult, error) {
	path := filepath.Join(b.dir, name+".db")
	if cmdline.IsPostgres(b.db) {
		path = b.db
	}
	st, err := env.OpenStore(ctx, path)
	if err != nil {
		return ledger.BenchResult{}, err
	}
	defer st.Close()
	w, err := ledger.New(ctx, ledger.Config{Store: st, MaxBatch: maxBatch})
	if err != nil {
		return ledger.BenchResult{}, err
	}
	defer w.Close()
	return ledger.Bench(ctx, w, ledger.BenchConfig{Hot: hot, Accounts: b.accounts, Clients: b.clients, Duration: b.dur})
}

// benchPayments drives create + capture over HTTP against a server: its own
// on 127.0.0.1:0 with a temporary data directory, or --url with --key (an
// operator key).
func benchPayments(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	fs := flag.NewFlagSet("paybound bench payments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.UsageFor(fs, stderr, "paybound bench payments [flags]")
	dur := fs.Duration("duration", 5*time.Second, "how long to submit")
	clients := fs.Int("clients", 128, "concurrent HTTP clients")
	payers := fs.Int("payers", 128, "funded users paying")
	url := fs.String("url", "", "server to load, started with --sandbox (default: start one in this process)")
	key := fs.String("key", "", "operator key of --url's server")
	profile := fs.String("cpuprofile", "", "write a CPU profile of this process to the file")
	baseline := fs.Bool("baseline", true, "also load a server that commits each operation alone, and report the speedup")
	db := fs.String("db", "", "a postgres:// URL for the in-process server's store (default: SQLite)")
	process := fs.Bool("process", false, processUsage)
	signed := fs.Bool("signed", false, "agents pay under mandates with signed requests (one request a payment) instead of users with bearer keys (create + capture)")
	randomKeys := fs.Bool("random-keys", false, "send random Idempotency-Keys (as UUIDv4 clients do) instead of time-ordered ones (as Paybound's clients do)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopProfile, err := cpuProfile(*profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *clients < 1 || *clients > 10_000 || *payers < 1 || *payers > 10_000 || *dur <= 0 {
		return errors.New("bench payments: need 1 <= clients <= 10000, 1 <= payers <= 10000 and a positive duration")
	}
	if *process && *url != "" {
		return errors.New("bench payments: --process starts a server; --url names one already running")
	}
	cfg := payLoad{url: *url, key: *key, dur: *dur, clients: *clients, payers: *payers, db: *db, signed: *signed, randomKeys: *randomKeys, env: env, process: *process}
	out, err := loadPayments(ctx, cfg, 0)
	if err != nil {
		return err
	}
	if *baseline && *url == "" {
		// The same load on a server that commits every operation alone.
		base, err := loadPayments(ctx, cfg, 1)
		if err != nil {
			return err
		}
		out["baseline_payments_per_sec"] = base["payments_per_sec"]
		out["speedup"] = math.Round(float64(out["payments_per_sec"].(int64))/float64(base["payments_per_sec"].(int64))*10) / 10
	}
	emit(stdout, out)
	return nil
}

// LoadRiskConfig is a risk configuration file (serve --risk-config) that
// raises risk control's velocity and decline-burst limits out of the way
// of a load test; every payment is still assessed.
const LoadRiskConfig = `{"per_minute": 1000000000, "per_hour": 1000000000, "per_day": 1000000000, "decline_burst": 1000000000}`

// payLoad is one payments load: against url (with the operator key), or a
// server of its own, begun with env.StartServer, when url is empty.
type payLoad struct {
	signed          bool // agents paying under mandates with signed requests, one request a payment
	randomKeys      bool // random Idempotency-Keys instead of time-ordered ones (idemKey)
	webhooks        bool // the server may deliver webhooks to 127.0.0.1
	process         bool // the server runs as a process of its own
	url, key, db    string
	dur             time.Duration
	clients, payers int
	env             Env
}

// benchDataDir is the in-process server's data directory: a new one for a
// new SQLite database; for a PostgreSQL database, one kept per database
// (in the user's cache directory), because the database remembers the
// transparency log's key and refuses a server with another.
func benchDataDir(db string) (string, error) {
	if db == "" {
		return os.MkdirTemp("", "paybound-bench-")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("couldn't find a cache directory for the bench's keys: %w", err)
	}
	sum := sha256.Sum256([]byte(db))
	dir := filepath.Join(cache, "paybound-bench", hex.EncodeToString(sum[:8]))
	return dir, os.MkdirAll(dir, 0o700)
}

// loadPayments runs cfg; maxBatch > 0 limits the in-process server's
// ledger batches.
func loadPayments(ctx context.Context, cfg payLoad, maxBatch int) (map[string]any, error) {
	// usage reads the server's counters; nil for a server of --url.
	var usage func() (Usage, error)
	if cfg.url == "" {
		srv, stop, err := startLoadServer(ctx, cfg, maxBatch)
		if err != nil {
			return nil, err
		}
		defer stop()
		cfg.url, cfg.key, usage = srv.URL, srv.OperatorKey, srv.Usage
	}
	call := newCaller(ctx, cfg.url, cfg.clients)
	merchant, users, err := setupPayers(call, cfg.key, cfg.payers)
	if err != nil {
		return nil, err
	}
	r := &loadRun{lat: make([][]time.Duration, cfg.clients), host: strings.TrimPrefix(cfg.url, "http://"), merchant: merchant, randomKeys: cfg.randomKeys}
	var agents []benchAgent
	if cfg.signed {
		for _, u := range users {
			a, err := newBenchAgent(call, u.APIKey, merchant.ID)
			if err != nil {
				return nil, err
			}
			agents = append(agents, a)
		}
	}
	var before Usage
	if usage != nil {
		if before, err = usage(); err != nil {
			return nil, err
		}
	}
	r.deadline = time.Now().Add(cfg.dur)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range cfg.clients {
		if cfg.signed {
			wg.Go(func() { r.paySigned(c, agents[c%len(agents)]) })
		} else {
			wg.Go(func() { r.payAndCapture(c, users[c%len(users)]) })
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	out, err := r.report(cfg, elapsed)
	if err != nil || usage == nil {
		return out, err
	}
	after, err := usage()
	if err != nil {
		return nil, err
	}
	after.sub(before).report(out, elapsed, r.done.Load(), "payment", cfg.db)
	return out, nil
}

// startLoadServer starts the server of a payments load in this process,
// and returns it with the function that stops it and removes what it made.
func startLoadServer(ctx context.Context, cfg payLoad, maxBatch int) (*Server, func(), error) {
	tmp, err := benchDataDir(cfg.db)
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {}
	if cfg.db == "" {
		cleanup = func() { os.RemoveAll(tmp) }
	}
	// The load is a few payers paying one merchant thousands of times a
	// minute: the velocity signals would rightly review it. They are
	// raised out of the way; every payment is still assessed.
	riskFile := filepath.Join(tmp, "bench-risk.json")
	if err := os.WriteFile(riskFile, []byte(LoadRiskConfig), 0o600); err != nil {
		cleanup()
		return nil, nil, err
	}
	sc := ServerConfig{DataDir: tmp, DB: cfg.db, RiskConfig: riskFile, MaxBatch: maxBatch}
	if cfg.webhooks {
		sc.WebhookAllowHosts = []string{"127.0.0.1"}
	}
	sc.Process = cfg.process
	srv, err := cfg.env.StartServer(ctx, sc)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return srv, func() { srv.Close(); cleanup() }, nil
}

// caller makes one JSON call to the API with a bearer key, and fails
// unless the answer has status want; out, if not nil, receives its body.
type caller func(method, path, key string, body any, want int, out any) error

// newCaller returns a caller of the server at url, through net/http with
// a connection per client: for setting up the load, not for the load.
func newCaller(ctx context.Context, url string, clients int) caller {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}, Timeout: 30 * time.Second}
	var seq atomic.Int64
	return func(method, path, key string, body any, want int, out any) error {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, url+path, rd)
		if err != nil {
			return err
		}
		if rd != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Idempotency-Key", "bench-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"-"+strconv.FormatInt(seq.Add(1), 36))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
}

// created is a merchant or a user the load created: its ID and API key.
type created struct {
	ID     string `json:"id"`
	APIKey string `json:"api_key"`
}

// setupPayers creates, with the operator's key, the load's merchant and
// its payers, each with 10^12 minor units of USD in the wallet.
func setupPayers(call caller, key string, payers int) (created, []created, error) {
	var merchant created
	if err := call("POST", "/v1/merchants", key, map[string]string{"name": "bench merchant"}, 201, &merchant); err != nil {
		return merchant, nil, err
	}
	users := make([]created, payers)
	for i := range users {
		if err := call("POST", "/v1/users", key, map[string]string{"name": "bench payer"}, 201, &users[i]); err != nil {
			return merchant, nil, err
		}
		if err := call("POST", "/v1/topups", users[i].APIKey, map[string]any{"amount": int64(1e12), "currency": "USD"}, 201, nil); err != nil {
			return merchant, nil, err
		}
	}
	return merchant, users, nil
}

// loadRun is what the clients of one payments load share.
type loadRun struct {
	host       string
	merchant   created
	deadline   time.Time
	randomKeys bool                  // see idemKey
	lat        [][]time.Duration     // per client, each request's latency
	done       atomic.Int64          // payments made
	firstErr   atomic.Pointer[error] // the first client's error that ended the load
}

func (r *loadRun) fail(err error) { r.firstErr.CompareAndSwap(nil, &err) }

// idemKey is a fresh Idempotency-Key: one that begins with the time, as
// Paybound's client and CLI send (pb.NewID), or with --random-keys 128
// random bits, as a UUIDv4 client sends, which costs the server an index
// page a key (migration 0021).
func (r *loadRun) idemKey() string {
	if !r.randomKeys {
		return pb.NewID("", time.Now())
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}

// payAndCapture is client c's load as payer u: a payment with manual
// capture, then its capture by the merchant, until the deadline.
func (r *loadRun) payAndCapture(c int, u created) {
	conn, err := dialRaw(r.host)
	if err != nil {
		r.fail(err)
		return
	}
	defer conn.c.Close()
	body := []byte(`{"amount":100,"currency":"USD","merchant_id":"` + r.merchant.ID + `","capture_method":"manual"}`)
	for n := 0; time.Now().Before(r.deadline); n++ {
		t0 := time.Now()
		key := r.idemKey()
		resp, err := conn.post("/v1/payments", u.APIKey, key, body, 201)
		if err != nil {
			r.fail(err)
			return
		}
		id := jsonString(resp, "id")
		t1 := time.Now()
		if _, err := conn.post("/v1/payments/"+id+"/capture", r.merchant.APIKey, key+"-c", nil, 200); err != nil {
			r.fail(err)
			return
		}
		r.lat[c] = append(r.lat[c], t1.Sub(t0), time.Since(t1))
		r.done.Add(1)
	}
}

// paySigned is client c's load as agent a: one signed request a payment,
// under its mandate, until the deadline.
func (r *loadRun) paySigned(c int, a benchAgent) {
	conn, err := dialRaw(r.host)
	if err != nil {
		r.fail(err)
		return
	}
	defer conn.c.Close()
	body := []byte(`{"amount":100,"currency":"USD","merchant_id":"` + r.merchant.ID + `","mandate_id":"` + a.mandate + `"}`)
	for n := 0; time.Now().Before(r.deadline); n++ {
		t0 := time.Now()
		key := r.idemKey()
		extra, err := a.sign(r.host, body, key)
		if err == nil {
			_, err = conn.postWith("/v1/payments", extra, key, body, 201)
		}
		if err != nil {
			r.fail(err)
			return
		}
		r.lat[c] = append(r.lat[c], time.Since(t0))
		r.done.Add(1)
	}
}

// report is the figures of a finished load of elapsed seconds, or the
// error that ended it.
func (r *loadRun) report(cfg payLoad, elapsed float64) (map[string]any, error) {
	if p := r.firstErr.Load(); p != nil {
		return nil, *p
	}
	all := slices.Concat(r.lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return nil, errors.New("bench payments: no payment completed")
	}
	storeName := "sqlite"
	if cmdline.IsPostgres(cfg.db) {
		storeName = "postgres"
	}
	requestsPer := int64(2)
	if cfg.signed {
		requestsPer = 1
	}
	done := r.done.Load()
	return map[string]any{"bench": "payments", "signed": cfg.signed, "random_keys": cfg.randomKeys, "store": storeName, "clients": cfg.clients, "payers": cfg.payers,
		"payments": done, "seconds": elapsed, "payments_per_sec": int64(float64(done) / elapsed),
		"requests_per_sec": int64(float64(requestsPer*done) / elapsed),
		"p50_ms":           ms(all[len(all)/2]), "p99_ms": ms(all[len(all)*99/100])}, nil
}

// rawConn is a minimal HTTP/1.1 keep-alive client for the load loop: the
// load generator shares the machine with the server, so it should cost as
// little as it can (net/http's client took a quarter of the CPU).
type rawConn struct {
	c    net.Conn
	host string
	br   *bufio.Reader
	bw   *bufio.Writer
	buf  []byte
}

func dialRaw(host string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, host: host, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

// post sends one request and returns the response body, which is valid
// until the next call. The server always sends Content-Length.
func (r *rawConn) post(path, key, idem string, body []byte, want int) ([]byte, error) {
	return r.postWith(path, "Authorization: Bearer "+key+"\r\n", idem, body, want)
}

// postWith sends extra (complete header lines) instead of a bearer key.
func (r *rawConn) postWith(path, extra, idem string, body []byte, want int) ([]byte, error) {
	r.c.SetDeadline(time.Now().Add(30 * time.Second))
	w := r.bw
	w.WriteString("POST " + path + " HTTP/1.1\r\nHost: " + r.host + "\r\n" + extra +
		"Idempotency-Key: " + idem + "\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return nil, err
	}
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 12 {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	length := -1
	for {
		h, err := r.br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 || length > 1<<20 {
		return nil, fmt.Errorf("POST %s: response without a usable Content-Length", path)
	}
	if cap(r.buf) < length {
		r.buf = make([]byte, length)
	}
	r.buf = r.buf[:length]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return nil, err
	}
	if status != want {
		return nil, fmt.Errorf("POST %s: %d %s", path, status, r.buf)
	}
	return r.buf, nil
}

// jsonString extracts the string value of the first "key" in a JSON body,
// enough for the IDs the load loop needs.
func jsonString(body []byte, key string) string {
	_, rest, ok := bytes.Cut(body, []byte(`"`+key+`":"`))
	if !ok {
		return ""
	}
	v, _, _ := bytes.Cut(rest, []byte(`"`))
	return string(v)
}

// benchAgent is an agent with a signing key and a mandate with room for
// the whole run.
type benchAgent struct {
	keyID, mandate string
	key            ed25519.PrivateKey
}

func newBenchAgent(call caller, userKey, merchant string) (benchAgent, error) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	jwk := json.RawMessage(`{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`)
	var ag struct {
		ID    string `json:"id"`
		KeyID string `json:"keyid"`
	}
	if err := call("POST", "/v1/agents", userKey, map[string]any{"name": "bench agent", "public_key": jwk}, 201, &ag); err != nil {
		return benchAgent{}, err
	}
	var m struct {
		ID string `json:"id"`
	}
	if err := call("POST", "/v1/mandates", userKey, map[string]any{"agent_id": ag.ID, "description": "benchmark", "currency": "USD",
		"max_amount": 100, "budget": map[string]any{"amount": int64(1e12)}, "merchant_ids": []string{merchant}}, 201, &m); err != nil {
		return benchAgent{}, err
	}
	return benchAgent{keyID: ag.KeyID, mandate: m.ID, key: priv}, nil
}

// sign returns the header lines of a signed POST /v1/payments.
func (a benchAgent) sign(host string, body []byte, idem string) (string, error) {
	r, _ := http.NewRequest("POST", "http://"+host+"/v1/payments", nil)
	r.Header.Set("Content-Digest", httpsig.ContentDigest(body))
	r.Header.Set("Idempotency-Key", idem)
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	now := time.Now()
	if err := httpsig.Sign(r, "http", "sig1", httpsig.Params{Components: []string{"@method", "@authority", "@path", "content-digest", "idempotency-key"},
		Created: now, Expires: now.Add(time.Minute), Nonce: base64.StdEncoding.EncodeToString(nonce), KeyID: a.keyID,
		Alg: "ed25519", Tag: "web-bot-auth"}, a.key); err != nil {
		return "", err
	}
	return "Content-Digest: " + r.Header.Get("Content-Digest") + "\r\nSignature-Input: " + r.Header.Get("Signature-Input") +
		"\r\nSignature: " + r.Header.Get("Signature") + "\r\n", nil
}
