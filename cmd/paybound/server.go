package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/cmd/paybound/cli"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
	"github.com/paybound/paybound/internal/acp"
	"github.com/paybound/paybound/internal/agentid"
	"github.com/paybound/paybound/internal/billing"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/httpapi"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandatereqs"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/mcpserver"
	"github.com/paybound/paybound/internal/paylinks"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/risk"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/settlement"
	"github.com/paybound/paybound/internal/signin"
	"github.com/paybound/paybound/internal/sqlite"
	tl "github.com/paybound/paybound/internal/tlog"
	"github.com/paybound/paybound/internal/translog"
	"github.com/paybound/paybound/internal/wallet"
	"github.com/paybound/paybound/internal/webhooks"
	"github.com/paybound/paybound/internal/x402pay"
	"github.com/paybound/paybound/x402/wire"
)

// Config is the server's whole configuration. Every field has a flag and an
// environment variable; flags win. Validate names the field at fault.
type Config struct {
	// Addr is the listen address (PAYBOUND_ADDR, --addr).
	Addr string
	// DataDir holds the database and the operator key (PAYBOUND_DATA, --data).
	DataDir string
	// DB selects the store (PAYBOUND_DB, --db): empty for SQLite at
	// <data>/paybound.db, a SQLite file path, or a postgres:// URL, which
	// several paybound processes may share.
	DB string
	// Demo seeds a funded demo user, a merchant and an agent (PAYBOUND_DEMO,
	// --demo), and turns the sandbox on.
	Demo bool
	// Sandbox turns on the sandbox funding rail: users top their wallets up
	// with test money (PAYBOUND_SANDBOX, --sandbox). Off, only the operator
	// funds wallets.
	Sandbox bool
	// FeeBPS is the platform fee in basis points of captured amounts
	// (PAYBOUND_FEE_BPS, --fee-bps).
	FeeBPS int64
	// LogLevel is debug, info, warn or error (PAYBOUND_LOG_LEVEL, --log-level).
	LogLevel string
	// MaxBatch bounds operations per ledger commit (PAYBOUND_MAX_BATCH, --max-batch).
	MaxBatch int
	// RequireSignatures makes require_signature default to true for new
	// mandates (PAYBOUND_REQUIRE_SIGNATURES, --require-signatures).
	RequireSignatures bool
	// PasskeyRPID is the WebAuthn relying party ID: the domain users see in
	// the browser (PAYBOUND_PASSKEY_RP_ID, --passkey-rp-id).
	PasskeyRPID string
	// PasskeyOrigin is the origin of the page that runs passkey ceremonies
	// (PAYBOUND_PASSKEY_ORIGIN, --passkey-origin); default
	// http://localhost:<port of addr>.
	PasskeyOrigin string
	// LogOrigin names the transparency log in its checkpoints
	// (PAYBOUND_LOG_ORIGIN, --log-origin), for example pay.example.com/log.
	// It is fixed when <data>/log.key is created (default
	// localhost/paybound-<random>); a later value must match it.
	LogOrigin string
	// WitnessPolicy is a witness policy file (PAYBOUND_WITNESS_POLICY,
	// --witness-policy): checkpoints are published only once the quorum it
	// names has cosigned them (C2SP tlog-witness).
	WitnessPolicy string
	// RiskConfig is a JSON file of risk control's thresholds
	// (PAYBOUND_RISK_CONFIG, --risk-config); fields it omits keep their
	// defaults (internal/risk.Defaults).
	RiskConfig string
	// PublicURL is the server's address as payers, agents and merchants
	// reach it (PAYBOUND_PUBLIC_URL, --public-url), such as
	// https://pay.example.com: payment links are PublicURL/l/{id}, and it is
	// the base of ACP order permalinks, confirmation links and the
	// delegate_payment URL that checkout sessions advertise. Default:
	// http://<addr as bound>.
	PublicURL string
	// WebhookAllowHosts are hosts whose http:// webhook URLs are accepted
	// and whose private or loopback addresses deliveries may reach
	// (PAYBOUND_WEBHOOK_ALLOW_HOSTS, --webhook-allow-hosts; a comma list).
	// Others must be https:// to public addresses.
	WebhookAllowHosts []string
	// X402Network is the CAIP-2 network this instance's x402 facilitator
	// settles on (PAYBOUND_X402_NETWORK, --x402-network), "paybound:" and
	// 1-32 letters, digits, '-' or '_'. Default: paybound:local.
	X402Network string
	// MCPX402Allow are the hosts whose URLs the MCP tool pay_x402_resource
	// may fetch for agents on /mcp (PAYBOUND_MCP_X402_ALLOW,
	// --mcp-x402-allow; a comma list of names, addresses or host:port),
	// wherever they resolve. Empty, the tool is refused: the server
	// fetches nothing a model asks it to.
	MCPX402Allow []string
}

// DefaultConfig returns the defaults: everything under ./paybound-data.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", DataDir: "paybound-data", LogLevel: "info", MaxBatch: 8192, PasskeyRPID: "localhost",
		X402Network: "paybound:local"}
}

// Validate checks c and says which field to change and how.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("config: addr %q is not host:port (for example 127.0.0.1:8080): %w", c.Addr, err)
	}
	if c.DataDir == "" {
		return errors.New("config: data must name a directory (for example ./paybound-data)")
	}
	if strings.Contains(c.DB, "://") && !cmdline.IsPostgres(c.DB) {
		return fmt.Errorf("config: db %q: use a postgres:// URL, a SQLite file path, or nothing for <data>/paybound.db", c.DB)
	}
	if c.FeeBPS < 0 || c.FeeBPS > 10_000 {
		return fmt.Errorf("config: fee-bps is %d; it must be between 0 and 10000", c.FeeBPS)
	}
	if !wire.ValidNetwork(c.X402Network) {
		return fmt.Errorf("config: x402-network %q must be paybound:<instance>, the instance 1-32 letters, digits, '-' or '_'", c.X402Network)
	}
	if c.PasskeyRPID == "" || strings.ContainsAny(c.PasskeyRPID, ":/") {
		return fmt.Errorf("config: passkey-rp-id %q must be a domain such as pay.example.com", c.PasskeyRPID)
	}
	if c.PasskeyOrigin != "" {
		if u, err := url.Parse(c.PasskeyOrigin); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("config: passkey-origin %q must be an origin such as https://pay.example.com", c.PasskeyOrigin)
		}
	}
	if c.LogOrigin != "" && (len(c.LogOrigin) > 200 || strings.ContainsAny(c.LogOrigin, " +\t\n") || !utf8.ValidString(c.LogOrigin)) {
		return fmt.Errorf("config: log-origin %q must be a schema-less URL such as pay.example.com/log, without spaces or '+'", c.LogOrigin)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("config: public-url %q must be an absolute http(s) URL such as https://pay.example.com", c.PublicURL)
		}
	}
	if c.MaxBatch < 1 || c.MaxBatch > 1<<16 {
		return fmt.Errorf("config: max-batch is %d; it must be between 1 and 65536", c.MaxBatch)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	for _, h := range c.WebhookAllowHosts {
		if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err != nil && (len(h) > 253 || strings.Trim(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "") {
			return fmt.Errorf("config: webhook-allow-hosts: %q is not a host name or IP address (for example 127.0.0.1 or hooks.internal)", h)
		}
	}
	for _, h := range c.MCPX402Allow {
		host := h
		if hh, port, err := net.SplitHostPort(h); err == nil && port != "" {
			host = hh
		}
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil && (len(host) > 253 || host == "" || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "") {
			return fmt.Errorf("config: mcp-x402-allow: %q is not a host name, IP address or host:port (for example api.example.com or 127.0.0.1:8402)", h)
		}
	}
	return nil
}

// openStore opens the store db names: a postgres:// URL, or else a SQLite
// file. A failed Open returns a nil *Store, which must not become a
// non-nil interface that Close would call: so the error returns nil.
func openStore(ctx context.Context, db string) (pb.Store, error) {
	if cmdline.IsPostgres(db) {
		st, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("config: log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// Main is the server process: ParseFlags, Run, Close. Tests construct it
// directly, set Clock or Logger, and run it on 127.0.0.1:0.
type Main struct {
	Config Config
	Clock  pb.Clock
	Logger *slog.Logger // default: text to Stderr at Config.LogLevel
	Stdout io.Writer
	Stderr io.Writer
	// PanicOnInvariant is set by tests: a broken ledger invariant panics.
	PanicOnInvariant bool

	// Set by Run.
	OperatorKey string
	Service     *service.Service
	// Webhooks adjusts the webhooks' configuration before they start
	// (tests shorten the retry schedule).
	Webhooks   func(*webhooks.Config)
	transLog   *translog.Service
	hooks      *webhooks.Service
	hookReg    *webhooks.Registry
	billing    *billing.Service                // Token Pay
	billingObs atomic.Pointer[billing.Service] // the ledger's observer, once built
	risk       *riskctl.Control
	store      pb.Store
	led        *ledger.Writer
	checkout   atomic.Pointer[checkout.Service] // the ledger's observer, once built
	payLinks   atomic.Pointer[paylinks.Service] // the ledger's observer, once built
	x402       atomic.Pointer[x402pay.Service]  // the ledger's observer, once built
	srv        *http.Server
	ln         net.Listener
	served     chan error
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: DefaultConfig(), Clock: pb.SystemClock{}, Stdout: os.Stdout, Stderr: os.Stderr}
}

// ParseFlags reads the environment, then the flags, into m.Config.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	c := &m.Config
	env := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	env("PAYBOUND_ADDR", &c.Addr)
	env("PAYBOUND_DATA", &c.DataDir)
	env("PAYBOUND_DB", &c.DB)
	env("PAYBOUND_LOG_LEVEL", &c.LogLevel)
	env("PAYBOUND_PASSKEY_RP_ID", &c.PasskeyRPID)
	env("PAYBOUND_PASSKEY_ORIGIN", &c.PasskeyOrigin)
	env("PAYBOUND_LOG_ORIGIN", &c.LogOrigin)
	env("PAYBOUND_WITNESS_POLICY", &c.WitnessPolicy)
	env("PAYBOUND_RISK_CONFIG", &c.RiskConfig)
	env("PAYBOUND_PUBLIC_URL", &c.PublicURL)
	env("PAYBOUND_X402_NETWORK", &c.X402Network)
	if v := getenv("PAYBOUND_WEBHOOK_ALLOW_HOSTS"); v != "" {
		c.WebhookAllowHosts = splitHosts(v)
	}
	if v := getenv("PAYBOUND_MCP_X402_ALLOW"); v != "" {
		c.MCPX402Allow = splitHosts(v)
	}
	for _, e := range []struct {
		name string
		dst  any
	}{{"PAYBOUND_DEMO", &c.Demo}, {"PAYBOUND_SANDBOX", &c.Sandbox}, {"PAYBOUND_FEE_BPS", &c.FeeBPS}, {"PAYBOUND_MAX_BATCH", &c.MaxBatch},
		{"PAYBOUND_REQUIRE_SIGNATURES", &c.RequireSignatures}} {
		v := getenv(e.name)
		if v == "" {
			continue
		}
		var err error
		switch d := e.dst.(type) {
		case *bool:
			*d, err = strconv.ParseBool(v)
		case *int64:
			*d, err = strconv.ParseInt(v, 10, 64)
		case *int:
			*d, err = strconv.Atoi(v)
		}
		if err != nil {
			return fmt.Errorf("config: %s=%q: %w", e.name, v, err)
		}
	}
	fs := flag.NewFlagSet("paybound serve", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cmdline.UsageFor(fs, m.Stderr, "paybound serve [flags]")
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (PAYBOUND_ADDR)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory (PAYBOUND_DATA)")
	fs.StringVar(&c.DB, "db", c.DB, "database: empty for <data>/paybound.db, a SQLite file path, or a postgres:// URL (PAYBOUND_DB)")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "seed a funded demo user, a merchant and an agent, and print their keys; turns --sandbox on (PAYBOUND_DEMO)")
	fs.BoolVar(&c.Sandbox, "sandbox", c.Sandbox, "users top their wallets up with test money (POST /v1/topups); off, only the operator funds wallets (PAYBOUND_SANDBOX)")
	fs.Int64Var(&c.FeeBPS, "fee-bps", c.FeeBPS, "platform fee in basis points of each capture (PAYBOUND_FEE_BPS)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (PAYBOUND_LOG_LEVEL)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most ledger operations per commit (PAYBOUND_MAX_BATCH)")
	fs.StringVar(&c.PasskeyRPID, "passkey-rp-id", c.PasskeyRPID, "WebAuthn relying party ID, the site's domain (PAYBOUND_PASSKEY_RP_ID)")
	fs.StringVar(&c.PasskeyOrigin, "passkey-origin", c.PasskeyOrigin, "origin of the page running passkey ceremonies, default http://localhost:<port> (PAYBOUND_PASSKEY_ORIGIN)")
	fs.StringVar(&c.WitnessPolicy, "witness-policy", c.WitnessPolicy, "witness policy file: publish only checkpoints its quorum cosigned (PAYBOUND_WITNESS_POLICY)")
	fs.StringVar(&c.RiskConfig, "risk-config", c.RiskConfig, "risk control's thresholds, a JSON file; omitted fields keep their defaults (PAYBOUND_RISK_CONFIG)")
	fs.StringVar(&c.LogOrigin, "log-origin", c.LogOrigin, "the transparency log's name, fixed when <data>/log.key is created (PAYBOUND_LOG_ORIGIN)")
	fs.BoolVar(&c.RequireSignatures, "require-signatures", c.RequireSignatures, "new mandates require signed agent requests unless created with require_signature false (PAYBOUND_REQUIRE_SIGNATURES)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "the server's address as payers and agents reach it, for payment links, ACP order and confirmation links; default http://<addr> (PAYBOUND_PUBLIC_URL)")
	fs.StringVar(&c.X402Network, "x402-network", c.X402Network, "the CAIP-2 network of this instance's x402 facilitator, paybound:<instance> (PAYBOUND_X402_NETWORK)")
	fs.Func("webhook-allow-hosts", "hosts whose http:// webhook URLs and private addresses are allowed, comma-separated (PAYBOUND_WEBHOOK_ALLOW_HOSTS)",
		func(v string) error { c.WebhookAllowHosts = splitHosts(v); return nil })
	fs.Func("mcp-x402-allow", "hosts the MCP tool pay_x402_resource may fetch for agents, comma-separated; none: the tool is refused (PAYBOUND_MCP_X402_ALLOW)",
		func(v string) error { c.MCPX402Allow = splitHosts(v); return nil })
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments; got %q", fs.Args())
	}
	return nil
}

// Run validates the configuration, opens the store, and starts serving in
// the background. On error the caller should still call Close.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if m.Logger == nil {
		level, _ := parseLevel(m.Config.LogLevel)
		m.Logger = slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))
	}
	if m.Clock == nil {
		m.Clock = pb.SystemClock{}
	}
	if err := os.MkdirAll(m.Config.DataDir, 0o700); err != nil {
		return fmt.Errorf("couldn't create data directory %s: %w", m.Config.DataDir, err)
	}
	key, created, err := loadOrCreateKey(filepath.Join(m.Config.DataDir, "operator.key"))
	if err != nil {
		return err
	}
	logKey, err := loadOrCreateLogKey(filepath.Join(m.Config.DataDir, "log.key"), m.Config.LogOrigin)
	if err != nil {
		return err
	}
	webhookKey, err := loadOrCreateWebhookKey(filepath.Join(m.Config.DataDir, "webhook.key"))
	if err != nil {
		return err
	}
	policy, riskCfg, err := m.Config.readFiles()
	if err != nil {
		return err
	}
	m.OperatorKey = key
	if err := m.openLedger(ctx, logKey); err != nil {
		return err
	}
	if m.risk, err = riskctl.NewControl(m.store, riskctl.Config{Thresholds: riskCfg, Clock: m.Clock, Logger: m.Logger}); err != nil {
		return err
	}
	if m.Service, err = service.New(service.Config{Store: m.store, Ledger: m.led, Clock: m.Clock, Logger: m.Logger,
		OperatorKey: key, FeeBPS: m.Config.FeeBPS, Mandates: mandates.NewPolicy(),
		Risk: m.risk, Sandbox: m.Config.Sandbox || m.Config.Demo}); err != nil {
		return err
	}
	if m.transLog, err = translog.New(m.Service, m.store, translog.Config{Key: logKey, WitnessPolicy: policy,
		Witnesses: newWitnessHTTP(), Logger: m.Logger,
		Parties: map[string]translog.SubjectParties{pb.PrefixCheckoutSession: m.sessionParties}}); err != nil {
		return err
	}
	hookCfg := webhooks.Config{Transport: newWebhookHTTP(m.Config.WebhookAllowHosts), SigningKey: webhookKey,
		AllowHosts: m.Config.WebhookAllowHosts, Clock: m.Clock, Logger: m.Logger}
	if m.Webhooks != nil {
		m.Webhooks(&hookCfg)
	}
	if m.hooks, err = webhooks.New(m.Service, m.store, m.hookReg, hookCfg); err != nil {
		return err
	}
	cfm, err := confirm.New(m.Service, m.store, confirm.Config{OperatorKey: key, PasskeyRPID: m.Config.PasskeyRPID,
		PasskeyOrigins: []string{m.Config.passkeyOrigin()}, Clock: m.Clock, Logger: m.Logger})
	if err != nil {
		return err
	}
	m.Service.Start()
	m.risk.Start()     // reloads the rules other processes change
	m.transLog.Start() // signs checkpoints
	m.hooks.Start()    // delivers webhook events
	if m.ln, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return fmt.Errorf("couldn't listen on %s: %w", m.Config.Addr, err)
	}
	ids := agentid.New(m.Service, m.store, m.Clock) // verifies signed requests; has routes
	mdt := mandates.New(m.Service, m.store, mandates.Config{RequireSignatureDefault: m.Config.RequireSignatures, Clock: m.Clock})
	rk := riskctl.New(m.Service, m.risk) // the operator's rules and flags; has routes
	// Agents ask for mandates; an approval grants one through mdt.
	mreqs := mandatereqs.New(m.Service, mdt, m.store, mandatereqs.Config{Clock: m.Clock})
	links, err := paylinks.New(m.Service, m.store, paylinks.Config{PublicURL: m.publicURL(), Clock: m.Clock})
	if err != nil {
		return err
	}
	m.payLinks.Store(links) // from now on it observes the ledger's entries
	reports := settlement.New(m.store, settlement.Config{})
	co, err := checkout.New(m.Service, m.store, checkout.Config{CardKey: cardKey(key), BaseURL: m.publicURL(), Clock: m.Clock})
	if err != nil {
		return err
	}
	m.checkout.Store(co) // from now on it observes the ledger's entries

	delegate := delegateKey(key) // signs the MCP tool's x402 authorizations for the agents it serves
	pay402, err := x402pay.New(m.Service, m.store, x402pay.Config{Network: m.Config.X402Network, Clock: m.Clock, Logger: m.Logger,
		Delegate: delegate.Public().(ed25519.PublicKey)})
	if err != nil {
		return err
	}
	m.x402.Store(pay402) // from now on it observes the ledger's entries
	pay402.Start()       // releases the tabs their payers closed
	if m.billing, err = billing.New(m.Service, m.store, billing.Config{Clock: m.Clock, Logger: m.Logger}); err != nil {
		return err
	}
	m.billingObs.Store(m.billing) // from now on it observes the ledger's entries
	m.billing.Start()             // expires reservations and grants
	disp := disputes.New(m.Service, m.transLog, m.store)
	// One-time sign-in codes for the wallet, asked for with a user's key.
	signIn, err := signin.New(m.store, signin.Config{Key: signinKey(key), Clock: m.Clock, Logger: m.Logger})
	if err != nil {
		return err
	}
	api := httpapi.New(m.Service, m.Logger, ids, ids, disp, cfm, m.transLog, mdt, rk,
		links, reports, co, m.hooks, pay402, m.billing, mreqs, signIn)
	acpHandler := acp.New(co, api.Authenticate, m.Logger) // ACP's own API, beside the REST API
	for _, pattern := range acp.Patterns() {
		api.Handle(pattern, acpHandler)
	}
	// The wallet's pages, over the same operations; its passkeys are
	// step-up's, so one passkey signs in and approves.
	wal, err := wallet.New(wallet.Parts{Core: m.Service, Confirm: cfm, Disputes: disp, Mandates: mdt, Requests: mreqs, Tabs: pay402, Agents: ids,
		Links: links, Checkout: co, Webhooks: m.hooks, Reports: reports, Log: m.transLog, Passkeys: m.store, SignIn: signIn,
		Billing: m.billing, Providers: m.store}, wallet.Config{RPID: m.Config.PasskeyRPID,
		Origins: []string{m.Config.passkeyOrigin()}, Clock: m.Clock, Logger: m.Logger})
	if err != nil {
		return err
	}
	api.Handle(wallet.Pattern, wal)
	fetcher := &cli.X402Fetcher{Allow: m.Config.MCPX402Allow, Closed: true, Now: m.Clock.Now} // paid URLs and tools for /mcp's agents
	mcpHandler, err := mcpserver.NewHandler(api.Authenticate, &mcpserver.InProcess{Core: m.Service, Mandates: mdt, Requests: mreqs, Disputes: disp,
		Links: links, Settlement: reports, Checkout: co, PublicURL: m.publicURL(), Log: m.Logger,
		X402: cli.DelegatedX402(fetcher, delegate, m.Config.X402Network), X402Tool: cli.DelegatedX402Tool(fetcher, delegate, m.Config.X402Network)},
		mcpserver.Config{Clock: m.Clock, Logger: m.Logger})
	if err != nil {
		return err
	}
	api.Handle("/mcp", mcpHandler) // the MCP server, streamable HTTP
	m.serve(api)
	keyPath := filepath.Join(m.Config.DataDir, "operator.key")
	if created {
		fmt.Fprintf(m.Stderr, "paybound: created the operator key in %s (mode 0600); keep it secret\n", keyPath)
	}
	fmt.Fprintf(m.Stderr, "paybound: serving on http://%s (data in %s, operator key in %s)\n", m.Addr(), m.Config.DataDir, keyPath)
	fmt.Fprintf(m.Stderr, "paybound: the wallet is at %s/wallet/\n", m.publicURL())
	if m.Config.Demo {
		if err := m.seedDemo(ctx); err != nil {
			return fmt.Errorf("couldn't seed the demo: %w", err)
		}
	}
	return nil
}

// readFiles reads and checks the files the configuration names: the
// witness policy and risk control's thresholds (nil when not named).
func (c *Config) readFiles() (policy []byte, riskCfg *risk.Config, err error) {
	if c.WitnessPolicy != "" {
		if policy, err = cmdline.ReadFile(c.WitnessPolicy, 1<<20); err != nil {
			return nil, nil, fmt.Errorf("config: witness-policy: %w", err)
		}
		if _, err := translog.ParseWitnessPolicy(policy); err != nil {
			return nil, nil, fmt.Errorf("config: %s: %w", c.WitnessPolicy, err)
		}
	}
	if c.RiskConfig != "" {
		b, err := cmdline.ReadFile(c.RiskConfig, 1<<20)
		if err != nil {
			return nil, nil, fmt.Errorf("config: risk-config: %w", err)
		}
		if riskCfg, err = riskctl.ParseRiskConfig(b); err != nil {
			return nil, nil, fmt.Errorf("config: %s: %w", c.RiskConfig, err)
		}
	}
	return policy, riskCfg, nil
}

// openLedger opens the store, claims the log for logKey, and starts the
// ledger writer on it. What it opened is m's, for Close, also when it
// fails.
func (m *Main) openLedger(ctx context.Context, logKey string) error {
	db := m.Config.DB
	if db == "" {
		db = filepath.Join(m.Config.DataDir, "paybound.db")
	}
	var err error
	if m.store, err = openStore(ctx, db); err != nil {
		return err
	}
	if err := claimLog(ctx, m.store, logKey); err != nil {
		return err
	}
	// The webhooks' outbox is written by an observer of the log's entries,
	// in their batches; it asks the registry of endpoints.
	if m.hookReg, err = webhooks.NewRegistry(ctx, m.store); err != nil {
		return err
	}
	m.led, err = ledger.New(ctx, ledger.Config{Store: m.store, Clock: m.Clock, Logger: m.Logger,
		MaxBatch: m.Config.MaxBatch, PanicOnInvariant: m.PanicOnInvariant,
		Observers: []ledger.Observer{m.observeCheckout, m.observePayLinks, m.observeX402, m.observeBilling,
			m.hookReg.Observer(m.Logger)}})
	return err
}

// serve serves h on m's listener in the background; Close stops it.
func (m *Main) serve(h http.Handler) {
	m.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      45 * time.Second, // above httpapi.MaxWait
		IdleTimeout:       120 * time.Second,
		// Above the API's own bound (httpapi.MaxHeaderBytes), which answers
		// 431 in the API's error shape; past this one the server answers
		// first, in plain text.
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.srv.Serve(m.ln) }()
}

// Addr is the address the server listens on (useful with port 0).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// URL is the server's base URL.
func (m *Main) URL() string { return "http://" + m.Addr() }

// publicURL is the configured public URL, or the address the server bound.
func (m *Main) publicURL() string {
	if m.Config.PublicURL != "" {
		return strings.TrimSuffix(m.Config.PublicURL, "/")
	}
	return m.URL()
}

// Close stops serving (waiting up to 10s for requests in flight), then the
// log's checkpointer, the sweeper, the ledger writer and the store, in that
// order, so that every acknowledged write is committed before the store
// closes.
func (m *Main) Close() error {
	var errs []error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, m.srv.Shutdown(ctx))
		cancel()
		if err := <-m.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		m.srv = nil
	}
	if m.transLog != nil {
		m.transLog.Close()
		m.transLog = nil
	}
	if f := m.x402.Swap(nil); f != nil {
		f.Stop()
	}
	if m.billing != nil {
		m.billing.Close() // before the ledger: its sweep writes through it
		m.billing = nil
	}
	if m.hooks != nil {
		m.hooks.Close() // before the ledger: disabling an endpoint writes through it
		m.hooks = nil
	}
	if m.Service != nil {
		m.Service.Close()
		m.Service = nil
	}
	if m.risk != nil {
		m.risk.Close()
		m.risk = nil
	}
	if m.led != nil {
		m.led.Close()
		m.led = nil
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
		m.store = nil
	}
	return errors.Join(errs...)
}

// observeCheckout is the checkout's ledger observer (the approval, denial
// or expiry of a session's payment settles the session; a refund updates
// its order), once the checkout is built: the ledger is built before it.
func (m *Main) observeCheckout(tx *ledger.Tx, ev pb.LogEvent) error {
	if co := m.checkout.Load(); co != nil {
		return co.Observe(tx, ev)
	}
	return nil
}

// sessionParties are the parties to a checkout session, who may read its
// log entries, once the checkout is built.
func (m *Main) sessionParties(ctx context.Context, id string) ([]string, error) {
	if co := m.checkout.Load(); co != nil {
		return co.Parties(ctx, id)
	}
	return nil, pb.Errorf(pb.ErrNotFound, "", "not found")
}

// observePayLinks is the payment links' ledger observer (a denied or
// expired link payment gives its use back), once they are built.
func (m *Main) observePayLinks(tx *ledger.Tx, ev pb.LogEvent) error {
	if pl := m.payLinks.Load(); pl != nil {
		return pl.Observe(tx, ev)
	}
	return nil
}

// observeBilling is Token Pay's ledger observer (a recharge payment
// captured once its user approved it grants its credit), once built.
func (m *Main) observeBilling(tx *ledger.Tx, ev pb.LogEvent) error {
	if b := m.billingObs.Load(); b != nil {
		return b.Observe(tx, ev)
	}
	return nil
}

// cardKey is the key agent card numbers are hashed under, derived from the
// operator key: a new operator key makes every issued card unusable (users
// issue new ones), and no other secret needs keeping.
// delegateKey is the server's x402 delegation key, derived from the
// operator key (so that every process of one deployment has it): it signs
// the authorizations of the MCP tool pay_x402_resource for the agents /mcp
// authenticated, and this instance's facilitator verifies them
// (wire.DelegatedPrefix).
func delegateKey(operatorKey string) ed25519.PrivateKey {
	sum := sha256.Sum256([]byte("paybound x402 delegation key\x00" + operatorKey))
	return ed25519.NewKeyFromSeed(sum[:])
}

func cardKey(operatorKey string) []byte {
	sum := sha256.Sum256([]byte("paybound agent card key\x00" + operatorKey))
	return sum[:]
}

// signinKey keys the hashes of the wallet's sign-in codes: derived from
// the operator key, so every process of a deployment has it.
func signinKey(operatorKey string) []byte {
	sum := sha256.Sum256([]byte("paybound sign-in code key\x00" + operatorKey))
	return sum[:]
}

// loadOrCreateKey reads the operator key, creating it (mode 0600) on first
// start. A key file readable by others is refused: it is the root secret.
func loadOrCreateKey(path string) (key string, created bool, err error) {
	return loadOrCreateSecret(path, "an operator key",
		func() (string, error) { return service.NewAPIKey(pb.RoleOperator), nil },
		func(key string) error {
			if !strings.HasPrefix(key, "pbk_op_") || len(key) < 40 {
				return errors.New("not an operator key")
			}
			return nil
		})
}

// loadOrCreateLogKey reads the transparency log's signing key, creating it
// (mode 0600) on first start for origin, or a random local origin. Its
// name is the log's origin, which never changes: an origin that differs
// from the key's is refused.
func loadOrCreateLogKey(path, origin string) (string, error) {
	key, _, err := loadOrCreateSecret(path, "a log key",
		func() (string, error) {
			o := origin
			if o == "" {
				o = "localhost/paybound-" + rand.Text()[:10]
			}
			skey, _, err := tl.NewKey(o)
			return skey, err
		},
		func(key string) error {
			s, err := tl.NewSigner(key)
			if err != nil {
				return err
			}
			if origin != "" && s.Origin() != origin {
				return fmt.Errorf("it signs for origin %q, not the configured log-origin %q; a log's origin cannot change", s.Origin(), origin)
			}
			return nil
		})
	return key, err
}

// claimLog records the log key's verifier key in the database on first
// start, and refuses a process whose key is not the recorded one: every
// process of a deployment must sign the one log with the one key.
func claimLog(ctx context.Context, st pb.Store, skey string) error {
	s, err := tl.NewSigner(skey)
	if err != nil {
		return err
	}
	got, err := st.ClaimLogKey(ctx, s.VerifierKey())
	if err != nil {
		return err
	}
	if got != s.VerifierKey() {
		return fmt.Errorf("this database's transparency log is signed by the key %s, but log.key in the data directory is %s: copy log.key from the first server of this deployment", got, s.VerifierKey())
	}
	return nil
}

// loadOrCreateSecret reads a one-line secret, or creates it with make
// (mode 0600, synced) when the file does not exist. A file readable by
// others, or whose content check refuses, is an error naming the file.
func loadOrCreateSecret(path, what string, newKey func() (string, error), check func(string) error) (key string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		st, serr := os.Stat(path)
		if serr == nil && st.Mode().Perm()&0o077 != 0 {
			return "", false, fmt.Errorf("%s is readable by others (mode %v); run chmod 600 %s", path, st.Mode().Perm(), path)
		}
		key = strings.TrimSpace(string(b))
		if err := check(key); err != nil {
			return "", false, fmt.Errorf("%s does not hold %s (%v); delete it to have a new one made", path, what, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("couldn't read %s: %w", path, err)
	}
	if key, err = newKey(); err != nil {
		return "", false, err
	}
	// Written whole to a temporary file, then linked into place: a process
	// starting at the same moment either links first or reads the winner's
	// complete file.
	f, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return "", false, fmt.Errorf("couldn't create %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(key + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(f.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateSecret(path, what, newKey, check)
	}
	if err != nil {
		return "", false, fmt.Errorf("couldn't create %s: %w", path, err)
	}
	return key, true, nil
}

// demoFile records the demo's keys so that a restart with --demo prints the
// same ones instead of seeding again.
type demoFile struct {
	UserID      string `json:"user_id"`
	UserKey     string `json:"user_key"`
	MerchantID  string `json:"merchant_id"`
	MerchantKey string `json:"merchant_key"`
	AgentID     string `json:"agent_id"`
	AgentKey    string `json:"agent_key"`
}

func (m *Main) seedDemo(ctx context.Context) error {
	path := filepath.Join(m.Config.DataDir, "demo.json")
	var d demoFile
	header := "Demo seeded (keys also in " + path + ")"
	if b, err := os.ReadFile(path); err == nil {
		header = "Demo from an earlier start (keys in " + path + "; nothing seeded again)"
		if err := json.Unmarshal(b, &d); err != nil {
			return fmt.Errorf("%s is unreadable (%v); delete it to seed a new demo", path, err)
		}
	} else {
		op := pb.Principal{Role: pb.RoleOperator, ID: "operator"}
		svc := m.Service
		r := svc.CreateUser(ctx, op, nil, "Demo User")
		if r.Err != nil {
			return r.Err
		}
		u := r.Value.(*service.NewUser)
		if r = svc.CreateMerchant(ctx, op, nil, "Demo Coffee", "food_and_drink"); r.Err != nil {
			return r.Err
		}
		mch := r.Value.(*service.NewMerchant)
		user := pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
		if r = svc.CreateAgent(ctx, user, nil, "Demo Agent", nil); r.Err != nil {
			return r.Err
		}
		a := r.Value.(*service.NewAgent)
		for _, cur := range []string{"USD", "CNY"} {
			if r = svc.Topup(ctx, user, nil, 100_000, cur); r.Err != nil {
				return r.Err
			}
		}
		d = demoFile{u.ID, u.APIKey, mch.ID, mch.APIKey, a.ID, a.APIKey}
		b, _ := json.MarshalIndent(d, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
	}
	// The wallet as it is now: after an earlier start it may hold anything.
	var wallet []string
	bs, err := m.Service.Balances(ctx, pb.Principal{Role: pb.RoleUser, ID: d.UserID, UserID: d.UserID})
	if err != nil {
		return fmt.Errorf("couldn't read the demo user's balance: %w", err)
	}
	for _, b := range bs {
		wallet = append(wallet, pb.FormatAmount(b.Available, b.Currency)+" "+b.Currency)
	}
	if len(wallet) == 0 {
		wallet = []string{"nothing"}
	}
	fmt.Fprintf(m.Stdout, `
%[1]s:
  user      %[2]s  (%[9]s available in the wallet)
    export PAYBOUND_KEY=%[3]s
  merchant  %[4]s  "Demo Coffee"
    export MERCHANT_ID=%[4]s MERCHANT_KEY=%[5]s
  agent     %[6]s  (acts for the demo user)
    export AGENT_ID=%[6]s AGENT_KEY=%[7]s
  operator key: %[8]s

`, header, d.UserID, d.UserKey, d.MerchantID, d.MerchantKey, d.AgentID, d.AgentKey, m.OperatorKey, strings.Join(wallet, " and "))
	return nil
}

// splitHosts reads a comma list of hosts.
func splitHosts(v string) []string {
	var out []string
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// passkeyOrigin is the configured origin, or http://localhost:<port>.
func (c *Config) passkeyOrigin() string {
	if c.PasskeyOrigin != "" {
		return c.PasskeyOrigin
	}
	_, port, _ := net.SplitHostPort(c.Addr)
	return "http://localhost:" + port
}
