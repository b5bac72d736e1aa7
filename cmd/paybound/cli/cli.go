// Package cli is the paybound command's client side: every subcommand
// but serve and bench calls a running server's API through package client
// and prints the result for people (or, with --json, as the API's JSON).
// It prints its own errors; main turns them into exit statuses
// (cmdline.ErrUsage, cmdline.ErrReported).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
)

// defaultURL is the server the CLI calls when neither --url nor
// PAYBOUND_URL names one: `paybound serve` with no flags.
const defaultURL = "http://127.0.0.1:8080"

// clientCommands is the synopsis of each client subcommand and what it
// needs, for Usage.
var clientCommands = [][2]string{
	{"users create --name NAME", "operator key"},
	{"merchants create --name NAME [--category C]", "operator key"},
	{"agents create --name NAME [--public-key JWK|@FILE]", "user key"},
	{"agents list [--limit N] [--starting-after agt_…]", "user key; with keys and assurance"},
	{"agents revoke agt_…", "user key; its API key and signing keys stop working"},
	{"agent keygen [--out agent.key]", "an Ed25519 key for signed agent requests"},
	{"agents keys add agt_… --public-key JWK|@FILE [--rotate-after 24h]", "user key"},
	{"agents keys list agt_… | revoke agt_… KEYID", "user key"},
	{"topup AMOUNT CURRENCY", "user key, on a --sandbox server; e.g. topup 50.00 USD"},
	{"fund usr_… AMOUNT CURRENCY --reference R", "operator key; money that arrived from outside"},
	{"pay --merchant mch_… --amount 12.50 --currency USD", "user or agent key"},
	{"    [--description D] [--mandate mdt_…] [--manual [--expires-in 2h]]", ""},
	{"    [--payee-from user|untrusted] [--amount-from user|untrusted]", ""},
	{"capture pay_… [--amount 5.00]", "merchant key"},
	{"cancel pay_…", "merchant or payer key"},
	{"refund pay_… [--amount 1.00] [--reason R]", "merchant key"},
	{"payments list [--limit N] [--starting-after pay_…]", ""},
	{"payments get pay_…", ""},
	{"payments trace pay_…", "any party: the payment's log entries, proven"},
	{"payments receipt pay_… [--out FILE]", "any party: a receipt to keep"},
	{"verify receipt FILE --log-key KEY [--url URL] [--policy FILE]", "offline; no API key"},
	{"disputes open pay_… --reason R [--details D]", "the payer's user key"},
	{"disputes list [--status open] | get dsp_…", "payer, merchant or operator key"},
	{"disputes resolve dsp_… --outcome O --liable PARTY [--amount 1.00]", "operator key"},
	{"audit [--duration 10s]", "operator key; checks the log against the ledger"},
	{"risk explain pay_…", "payer, agent or operator key: why risk control decided"},
	{"risk rules set NAME --expression CEL --action A --priority N", "operator key"},
	{"risk rules list | delete NAME", "operator key"},
	{"risk flag mch_… --flags suspected_fraud", "operator key; empty clears"},
	{"risk export [--limit N] > attempts.jsonl", "operator key"},
	{"risk replay FILE.jsonl [--rules FILE] [--config FILE]", "offline with --rules"},
	{"balance", "user or merchant key"},
	{"mandates create --agent agt_… --description D --currency CNY", "user key"},
	{"    --max 30.00 --budget 150.00 [--period week] [--merchants …]", ""},
	{"    [--categories …] [--days mon,fri --hours 07:00-10:00 --time-zone Z]", ""},
	{"    [--max-payments N] [--confirm-above 25.00] [--condition CEL]", ""},
	{"mandates list | get mdt_… | revoke mdt_…", "user key (list and get: agent key too)"},
	{"mandates card mdt_…", "user key (an agent card for ACP, shown once)"},
	{"mandates cards mdt_… | revoke-card mdt_… card_…", "user key (a mandate's agent cards; revoke one alone)"},
	{"mandates request --reason R --description D --currency CNY --max … --budget …", "agent key: ask the user (create's flags)"},
	{"mandates requests [--status pending] | approve mreq_… | refuse mreq_…", "user key (requests: agent key too)"},
	{"checkout create --merchant mch_… --item prod_…[:QTY] … [--ship-to ADDR]", "agent key; an ACP checkout session"},
	{"checkout update cs_… --merchant mch_… [--item …] [--ship-to ADDR]", "agent key"},
	{"checkout get cs_… --merchant mch_… | cancel cs_… --merchant mch_…", "agent key"},
	{"checkout pay cs_… --merchant mch_… --card NUMBER [--exp MM/YY]", "agent key and key file: delegate_payment, complete"},
	{"checkout buy --merchant mch_… --item prod_…[:QTY] … --card NUMBER", "agent key and key file: create and pay in one"},
	{"    [--ship-to \"Name, line1, City, ST, ZIP, US\"]", ""},
	{"products create --name N --price 12.50 --currency USD --fulfillment F", "merchant key"},
	{"products list [--merchant mch_…] | archive prod_…", "merchant key (list: any key with --merchant)"},
	{"totp enroll | verify CODE", "user key; one-time codes for step-up"},
	{"signin-code", "user key; a one-time code for the wallet's sign-in page"},
	{"confirmations list [--limit N] [--starting-after cfm_…]", "user key; payments waiting for you"},
	{"approve cfm_… --totp 123456 | deny cfm_…", "user key; a payment waiting for you"},
	{"ledger verify", "operator key; fails unless the ledger is sound"},
	{"links create --amount 12.50 --currency USD --description D", "merchant key; a payment link"},
	{"    [--expires-in 24h] [--max-uses N]", ""},
	{"links list | get plink_… | deactivate plink_…", "merchant key"},
	{"links offer plink_… | pay plink_… [--mandate mdt_…]", "offer: no key; pay: user or agent key"},
	{"reconcile STATEMENT.csv [--server URL] [--from T --to T]", "merchant key; exit 1 when they differ"},
	{"mcp --server URL [--agent-key agent.key]", "agent key file; the agent's MCP tools over stdio"},
	{"webhook create URL --events payment.captured,…|'*' [--format acp]", "user, merchant or agent key"},
	{"webhook list | get we_… | update we_… | delete we_… | rotate we_… | test we_…", "the endpoint's owner"},
	{"webhook deliveries we_… | redeliver whd_… | key", "the endpoint's owner; key: any key"},
	{"x402 fetch URL --mandate mdt_… [--max 0.05] [--max-hour 1.00] [--tab 1.00]", "agent key file; pays a 402 within the caps"},
	{"x402 serve-demo --merchant mch_… [--addr 127.0.0.1:8402] [--price 0.01]", "merchant key (claims tabs); a paid API"},
	{"billing price --model M --unit-price 2.50 --currency USD [--token-type T]", "provider (merchant) key; Token Pay"},
	{"billing grant usr_…|agt_… --amount 10.00 --currency USD [--category C] | void grant_…", "provider key"},
	{"billing reserve usr_… --estimate N --model M | events FILE.json", "provider key"},
	{"billing balance usr_…|me | usage usr_…|me [--group-by model,token_type]", "provider key (user key with --provider)"},
	{"billing invoice usr_… --period 2026-11 --currency USD [--csv] [--finalize]", "provider key"},
	{"billing recharge --provider mch_… --amount 20.00 --currency USD [--mandate mdt_…]", "user or agent key: a payment for credit"},
}

// Usage lists the client subcommands, one per line, for `paybound help`.
func Usage(w io.Writer) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, c := range clientCommands {
		note := ""
		if c[1] != "" {
			note = "(" + c[1] + ")"
		}
		prefix := "paybound "
		if strings.HasPrefix(c[0], " ") {
			prefix = "         "
		}
		fmt.Fprintf(tw, "  %s%s\t%s\n", prefix, c[0], note)
	}
	tw.Flush()
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	fmt.Fprint(w, `
  Every client command takes --url and --key (default $PAYBOUND_URL, else
  `+defaultURL+`, and $PAYBOUND_KEY) and --json; those that create or
  move money take --idempotency-key. Amounts are decimals in the currency's
  unit (12.50 USD), never minor units.
`)
}

// Run runs a client subcommand, args[0], with its arguments, reading
// PAYBOUND_URL, PAYBOUND_KEY and PAYBOUND_AGENT_KEY with getenv. handled
// is false when args[0] is not one. Errors are printed to stderr by Run
// itself, as "error: <code>: <message>", and returned wrapping
// cmdline.ErrReported (and the original error, for errors.As); a command
// line the command cannot run returns cmdline.ErrUsage after its usage,
// and -h flag.ErrHelp.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) (handled bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	cl := &cli{ctx: ctx, stdout: stdout, stderr: stderr, getenv: getenv}
	rest := args[1:]
	switch args[0] {
	case "users":
		err = cl.group("users", rest, map[string]func([]string) error{"create": cl.createUser})
	case "merchants":
		err = cl.group("merchants", rest, map[string]func([]string) error{"create": cl.createMerchant})
	case "agents":
		err = cl.group("agents", rest, map[string]func([]string) error{"create": cl.createAgent, "keys": cl.agentKeys, "list": cl.listAgents, "revoke": cl.revokeAgent})
	case "payments":
		err = cl.group("payments", rest, map[string]func([]string) error{"list": cl.listPayments, "get": cl.getPayment,
			"trace": cl.trace, "receipt": cl.receipt})
	case "mandates", "mandate":
		err = cl.mandates(rest)
	case "checkout":
		err = cl.checkout(rest)
	case "products", "product":
		err = cl.products(rest)
	case "totp":
		err = cl.totp(rest)
	case "signin-code":
		err = cl.signinCode(rest)
	case "agent":
		err = cl.group("agent", rest, map[string]func([]string) error{"keygen": cl.keygen})
	case "confirmations":
		err = cl.group("confirmations", rest, map[string]func([]string) error{"list": cl.listConfirmations})
	case "approve":
		err = cl.approve(rest)
	case "deny":
		err = cl.deny(rest)
	case "ledger":
		err = cl.group("ledger", rest, map[string]func([]string) error{"verify": cl.verifyLedger})
	case "verify":
		err = cl.verify(rest)
	case "disputes":
		err = cl.disputes(rest)
	case "webhook", "webhooks":
		err = cl.webhooks(rest)
	case "audit":
		err = cl.audit(rest)
	case "risk":
		err = cl.risk(rest)
	case "topup":
		err = cl.topup(rest)
	case "fund":
		err = cl.fund(rest)
	case "pay":
		err = cl.pay(rest)
	case "capture":
		err = cl.capture(rest)
	case "cancel":
		err = cl.cancel(rest)
	case "refund":
		err = cl.refund(rest)
	case "balance":
		err = cl.balance(rest)
	case "links":
		err = cl.links(rest)
	case "billing":
		err = cl.billing(rest)
	case "reconcile":
		err = cl.reconcileCmd(rest)
	case "x402":
		err = cl.x402(rest)
	default:
		return false, nil
	}
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.Is(err, cmdline.ErrReported) || errors.Is(err, cmdline.ErrUsage) {
		return true, err
	}
	cl.printError(err)
	return true, fmt.Errorf("%w: %w", cmdline.ErrReported, err)
}

// cli is one client command's environment.
type cli struct {
	ctx            context.Context
	stdout, stderr io.Writer
	getenv         func(string) string
}

// group dispatches `paybound NAME SUB …` to subs[SUB].
func (cl *cli) group(name string, args []string, subs map[string]func([]string) error) error {
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(args[1:])
		}
	}
	names := slices.Sorted(maps.Keys(subs))
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintf(cl.stderr, "usage: paybound %s %s …\nRun `paybound %s SUBCOMMAND -h` for its flags.\n", name, strings.Join(names, "|"), name)
		return flag.ErrHelp
	}
	if len(args) == 0 {
		fmt.Fprintf(cl.stderr, "usage: paybound %s %s …\n", name, strings.Join(names, "|"))
	} else {
		fmt.Fprintf(cl.stderr, "paybound %s: unknown subcommand %q; use %s\n", name, args[0], strings.Join(names, " or "))
	}
	return fmt.Errorf("%w: no such subcommand", cmdline.ErrUsage)
}

// printError writes err to stderr: an API error as
// "error: <code>: <message>", with its param and payment_id when it has
// them; anything else as "error: <err>".
func (cl *cli) printError(err error) {
	var ae *client.ACPError
	if errors.As(err, &ae) && err == error(ae) {
		// ACP's errors: the same line, the param a JSONPath or a header.
		err = &pb.Error{Code: pb.Code(ae.Code), Message: ae.Message, Param: ae.Param}
	}
	var e *pb.Error
	if !errors.As(err, &e) || err != error(e) {
		fmt.Fprintln(cl.stderr, "error:", err)
		return
	}
	msg := fmt.Sprintf("error: %s: %s", e.Code, e.Message)
	if e.Param != "" {
		msg += fmt.Sprintf(" (param %s)", e.Param)
	}
	if e.PaymentID != "" {
		msg += fmt.Sprintf(" (payment_id %s)", e.PaymentID)
	}
	fmt.Fprintln(cl.stderr, msg)
}

// cmd is one command's flags: its own, plus the connection flags every
// client command shares.
type cmd struct {
	cl       *cli
	fs       *flag.FlagSet
	synopsis string
	url, key string
	json     bool
	idem     string
}

// command starts the flag set of `paybound <synopsis>`; post adds
// --idempotency-key.
func (cl *cli) command(name, synopsis string, post bool) *cmd {
	c := &cmd{cl: cl, fs: flag.NewFlagSet("paybound "+name, flag.ContinueOnError), synopsis: synopsis}
	c.fs.SetOutput(cl.stderr)
	// The defaults come from the environment after parsing, so that -h never
	// prints the key.
	c.fs.StringVar(&c.url, "url", "", "server URL (default $PAYBOUND_URL, else "+defaultURL+")")
	c.fs.StringVar(&c.key, "key", "", "API key (default $PAYBOUND_KEY; prefer the environment: flags show in ps)")
	c.fs.BoolVar(&c.json, "json", false, "print the JSON object instead of text")
	if post {
		c.fs.StringVar(&c.idem, "idempotency-key", "", "Idempotency-Key to send (default: a fresh one that begins with the time); repeat a command with the same key to retry it without applying it twice")
	}
	cmdline.UsageFor(c.fs, cl.stderr, "paybound "+synopsis)
	return c
}

// parse parses args, flags and positional arguments in any order, and
// requires exactly len(names) positional arguments. An argument that
// starts with '-' but names no flag is an argument where one is still due;
// a flag's value is the argument after it, whatever it looks like; --
// ends the flags.
func (c *cmd) parse(args []string, names ...string) ([]string, error) {
	var pos, flags []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--": // the end of the flags
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) < 2 || a[0] != '-':
			pos = append(pos, a)
		case len(pos) < len(names) && c.positional(a):
			// An agent key's ID (base64url) may start with '-'.
			pos = append(pos, a)
		default:
			flags = append(flags, a)
			if c.takesValue(a) && i+1 < len(args) {
				i++
				flags = append(flags, args[i]) // whatever it looks like
			}
		}
	}
	if err := c.fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", cmdline.ErrUsage, err) // the flag set printed it
	}
	if len(pos) != len(names) {
		want := "no arguments"
		if len(names) > 0 {
			want = strings.Join(names, " ")
		}
		fmt.Fprintf(c.cl.stderr, "%s: want %s, got %q\n", c.fs.Name(), want, pos)
		c.fs.Usage()
		return nil, fmt.Errorf("%w: bad arguments", cmdline.ErrUsage)
	}
	return pos, nil
}

// flagName is the name in a flag argument: -name, --name, -name=value.
func flagName(a string) (name string, hasValue bool) {
	name, _, hasValue = strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
	return name, hasValue
}

// positional reports whether a, which starts with '-', is an argument
// rather than a flag: it names no flag of the command (nor -h or -help).
func (c *cmd) positional(a string) bool {
	name, _ := flagName(a)
	return c.fs.Lookup(name) == nil && name != "h" && name != "help"
}

// takesValue reports whether flag argument a is followed by its value: a
// flag of the command, not boolean, without =value.
func (c *cmd) takesValue(a string) bool {
	name, hasValue := flagName(a)
	f := c.fs.Lookup(name)
	if f == nil || hasValue {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// call parses args as parse does, then returns a client for the flags and
// the context to call it with: the start of every command that calls the
// server.
func (c *cmd) call(args []string, names ...string) ([]string, *client.Client, context.Context, error) {
	pos, err := c.parse(args, names...)
	if err != nil {
		return nil, nil, nil, err
	}
	api, ctx, err := c.client()
	return pos, api, ctx, err
}

// serverURL is --url, else $PAYBOUND_URL, else defaultURL.
func (c *cmd) serverURL() (string, error) {
	u := c.url
	if u == "" {
		u = c.cl.getenv("PAYBOUND_URL")
	}
	if u == "" {
		u = defaultURL
	}
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return "", fmt.Errorf("the server URL %q is not an http:// or https:// URL; set --url or PAYBOUND_URL", u)
	}
	return u, nil
}

// client returns a client for the parsed flags, and the context to call it
// with (carrying --idempotency-key).
func (c *cmd) client() (*client.Client, context.Context, error) {
	u, err := c.serverURL()
	if err != nil {
		return nil, nil, err
	}
	key := c.key
	if key == "" {
		key = c.cl.getenv("PAYBOUND_KEY")
	}
	opts := []client.Option{client.WithUserAgent("paybound-cli")}
	if file := c.cl.getenv("PAYBOUND_AGENT_KEY"); file != "" && c.key == "" {
		// An agent's key file: sign every request instead of a bearer key.
		keyID, priv, err := loadAgentKey(file)
		if err != nil {
			return nil, nil, err
		}
		opts, key = append(opts, client.WithAgentKey(keyID, priv)), ""
	} else if key == "" {
		return nil, nil, errors.New("no API key: set PAYBOUND_KEY (or PAYBOUND_AGENT_KEY to an agent's key file) or pass --key")
	}
	ctx := c.cl.ctx
	if c.idem != "" {
		ctx = client.WithIdempotencyKey(ctx, c.idem)
	}
	return client.New(u, key, opts...), ctx, nil
}

// print writes v as indented JSON with --json, or calls human otherwise.
func (c *cmd) print(v any, human func(w io.Writer)) error {
	if c.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("couldn't encode the result: %w", err)
		}
		_, err = fmt.Fprintf(c.cl.stdout, "%s\n", b)
		return err
	}
	human(c.cl.stdout)
	return nil
}

// money renders minor units as "12.50 USD".
func money(amount int64, currency string) string {
	return pb.FormatAmount(amount, currency) + " " + currency
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// printKey prints a newly created secret with the warning that it is shown once.
func printKey(w io.Writer, key string) {
	fmt.Fprintf(w, "api_key %s\n  (shown once: the server keeps only its hash; store it now, e.g. export PAYBOUND_KEY=%s)\n", key, key)
}

func (cl *cli) createUser(args []string) error {
	c := cl.command("users create", "users create --name NAME", true)
	name := c.fs.String("name", "", "the user's name (required)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required")
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	u, err := api.CreateUser(ctx, *name)
	if err != nil {
		return err
	}
	return c.print(u, func(w io.Writer) {
		fmt.Fprintf(w, "%s %q created\n", u.ID, u.Name)
		printKey(w, u.APIKey)
	})
}

func (cl *cli) createMerchant(args []string) error {
	c := cl.command("merchants create", "merchants create --name NAME [--category C]", true)
	name := c.fs.String("name", "", "the merchant's name (required)")
	category := c.fs.String("category", "", "the merchant's category (default general)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required")
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	m, err := api.CreateMerchant(ctx, *name, *category)
	if err != nil {
		return err
	}
	return c.print(m, func(w io.Writer) {
		fmt.Fprintf(w, "%s %q (%s) created\n", m.ID, m.Name, m.Category)
		printKey(w, m.APIKey)
	})
}

func (cl *cli) createAgent(args []string) error {
	c := cl.command("agents create", "agents create --name NAME [--public-key JWK|@FILE]", true)
	name := c.fs.String("name", "", "the agent's name (required)")
	pub := c.fs.String("public-key", "", `the agent's Ed25519 public key as a JWK, {"kty":"OKP","crv":"Ed25519","x":"…"}, or @FILE to read it from FILE`)
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required")
	}
	var jwk json.RawMessage
	if *pub != "" {
		var err error
		if jwk, err = readJWK(*pub); err != nil {
			return err
		}
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	a, err := api.CreateAgent(ctx, *name, jwk)
	if err != nil {
		return err
	}
	return c.print(a, func(w io.Writer) {
		fmt.Fprintf(w, "%s %q created, acting for %s", a.ID, a.Name, a.UserID)
		if a.KeyID != "" {
			fmt.Fprintf(w, " (keyid %s)", a.KeyID)
		}
		fmt.Fprintln(w)
		printKey(w, a.APIKey)
	})
}

func (cl *cli) topup(args []string) error {
	c := cl.command("topup", "topup AMOUNT CURRENCY   (AMOUNT is a decimal such as 50.00)", true)
	pos, err := c.parse(args, "AMOUNT", "CURRENCY")
	if err != nil {
		return err
	}
	currency := strings.ToUpper(pos[1])
	amount, err := pb.ParseAmount(pos[0], currency)
	if err != nil {
		return err
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	t, err := api.Topup(ctx, amount, currency)
	if err != nil {
		return err
	}
	return c.print(t, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s: +%s to %s\n", t.ID, t.Status, money(t.Amount, t.Currency), t.UserID)
	})
}

func (cl *cli) fund(args []string) error {
	c := cl.command("fund", "fund usr_… AMOUNT CURRENCY --reference R   (operator key; AMOUNT is a decimal such as 50.00)", true)
	ref := c.fs.String("reference", "", "the external movement that funds the wallet, such as a bank transfer's reference (required)")
	pos, err := c.parse(args, "USER_ID", "AMOUNT", "CURRENCY")
	if err != nil {
		return err
	}
	currency := strings.ToUpper(pos[2])
	amount, err := pb.ParseAmount(pos[1], currency)
	if err != nil {
		return err
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	t, err := api.Fund(ctx, pos[0], amount, currency, *ref)
	if err != nil {
		return err
	}
	return c.print(t, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s: +%s to %s\n", t.ID, t.Status, money(t.Amount, t.Currency), t.UserID)
	})
}

// paymentLine is a payment in one line:
// "pay_… captured 12.50 USD → mch_…", plus what is notable about it.
func paymentLine(p *pb.Payment) string {
	amount := money(p.Amount, p.Currency)
	if p.AmountCaptured > 0 && p.AmountCaptured != p.Amount {
		amount = pb.FormatAmount(p.AmountCaptured, p.Currency) + " of " + amount
	}
	s := fmt.Sprintf("%s %s %s → %s", p.ID, p.Status, amount, p.MerchantID)
	var notes []string
	if p.AmountRefunded > 0 {
		notes = append(notes, "refunded "+money(p.AmountRefunded, p.Currency))
	}
	if p.Status == pb.StatusAuthorized && p.AuthorizationExpiresAt != nil {
		notes = append(notes, "hold expires "+stamp(*p.AuthorizationExpiresAt))
	}
	if p.DeclineCode != "" {
		notes = append(notes, "declined: "+string(p.DeclineCode))
	}
	if p.Confirmation != nil && p.Status == pb.StatusRequiresConfirmation {
		notes = append(notes, "waiting for the user: paybound approve "+p.Confirmation.ID+" --totp CODE, until "+stamp(p.Confirmation.ExpiresAt))
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

func (cl *cli) pay(args []string) error {
	c := cl.command("pay", "pay --merchant mch_… --amount 12.50 --currency USD [--description D] [--manual [--expires-in 2h]]", true)
	merchant := c.fs.String("merchant", "", "the merchant's ID, mch_… (required)")
	amountS := c.fs.String("amount", "", "the amount as a decimal, such as 12.50 (required)")
	currencyS := c.fs.String("currency", "", "ISO 4217 currency code, such as USD (required)")
	description := c.fs.String("description", "", "what the payment is for")
	mandate := c.fs.String("mandate", "", "the mandate an agent pays under, mdt_…")
	manual := c.fs.Bool("manual", false, "only authorize (hold) the amount; the merchant captures it later")
	payeeFrom := c.fs.String("payee-from", "", "where the agent took the merchant from: user, untrusted (content it read) or unknown")
	amountFrom := c.fs.String("amount-from", "", "where the agent took the amount from: user, untrusted or unknown")
	expiresIn := c.fs.Duration("expires-in", 0, "with --manual: release the hold after this long (default 7 days)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	switch {
	case *merchant == "":
		return errors.New("--merchant is required")
	case *amountS == "":
		return errors.New("--amount is required")
	case *currencyS == "":
		return errors.New("--currency is required")
	case *expiresIn != 0 && !*manual:
		return errors.New("--expires-in applies only to a --manual payment: an automatic one is captured at once")
	}
	currency := strings.ToUpper(*currencyS)
	amount, err := pb.ParseAmount(*amountS, currency)
	if err != nil {
		return err
	}
	params := client.CreatePaymentParams{Amount: amount, Currency: currency, MerchantID: *merchant,
		Description: *description, MandateID: *mandate}
	if *payeeFrom != "" || *amountFrom != "" {
		params.Provenance = &client.Provenance{Payee: *payeeFrom, Amount: *amountFrom}
	}
	if *manual {
		params.CaptureMethod = pb.CaptureManual
	}
	if *expiresIn != 0 {
		// Rounded up to the second: never less than asked.
		t := time.Now().Add(*expiresIn + time.Second - 1).UTC().Truncate(time.Second)
		params.AuthorizationExpiresAt = &t
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	p, err := api.CreatePayment(ctx, params)
	if err != nil {
		return err
	}
	return c.print(p, func(w io.Writer) { fmt.Fprintln(w, paymentLine(p)) })
}

// optionalAmount parses a decimal --amount in the currency of payment id,
// which it fetches; "" is nil (the whole amount).
func optionalAmount(ctx context.Context, api *client.Client, id, s string) (*int64, error) {
	if s == "" {
		return nil, nil
	}
	p, err := api.GetPayment(ctx, id)
	if err != nil {
		return nil, err
	}
	amount, err := pb.ParseAmount(s, p.Currency)
	if err != nil {
		return nil, err
	}
	return &amount, nil
}

func (cl *cli) capture(args []string) error {
	c := cl.command("capture", "capture pay_… [--amount 5.00]", true)
	amountS := c.fs.String("amount", "", "capture only this much, as a decimal in the payment's currency (default: all of the hold)")
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	amount, err := optionalAmount(ctx, api, pos[0], *amountS)
	if err != nil {
		return err
	}
	p, err := api.Capture(ctx, pos[0], amount)
	if err != nil {
		return err
	}
	return c.print(p, func(w io.Writer) { fmt.Fprintln(w, paymentLine(p)) })
}

func (cl *cli) cancel(args []string) error {
	c := cl.command("cancel", "cancel pay_…", true)
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	p, err := api.Cancel(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(p, func(w io.Writer) { fmt.Fprintln(w, paymentLine(p)) })
}

func (cl *cli) refund(args []string) error {
	c := cl.command("refund", "refund pay_… [--amount 1.00] [--reason R]", true)
	amountS := c.fs.String("amount", "", "refund only this much, as a decimal in the payment's currency (default: all not yet refunded)")
	reason := c.fs.String("reason", "", "why, for the payer and the audit trail")
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	amount, err := optionalAmount(ctx, api, pos[0], *amountS)
	if err != nil {
		return err
	}
	r, err := api.Refund(ctx, pos[0], amount, *reason)
	if err != nil {
		return err
	}
	return c.print(r, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s: refunded %s of %s\n", r.ID, r.Status, money(r.Amount, r.Currency), r.PaymentID)
	})
}

func (cl *cli) listPayments(args []string) error {
	c := cl.command("payments list", "payments list [--limit N] [--starting-after pay_…]", false)
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last payment ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	page, err := api.ListPayments(ctx, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(page, func(w io.Writer) {
		if len(page.Data) == 0 {
			fmt.Fprintln(w, "no payments")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tAMOUNT\tCAPTURED\tREFUNDED\tMERCHANT\tCREATED")
		for i := range page.Data {
			p := &page.Data[i]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Status, money(p.Amount, p.Currency),
				pb.FormatAmount(p.AmountCaptured, p.Currency), pb.FormatAmount(p.AmountRefunded, p.Currency),
				p.MerchantID, stamp(p.CreatedAt))
		}
		tw.Flush()
		if page.HasMore {
			fmt.Fprintf(w, "more: paybound payments list --starting-after %s\n", page.Data[len(page.Data)-1].ID)
		}
	})
}

func (cl *cli) listConfirmations(args []string) error {
	c := cl.command("confirmations list", "confirmations list [--limit N] [--starting-after cfm_…]", false)
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last confirmation ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	page, err := api.PendingConfirmations(ctx, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(page, func(w io.Writer) {
		if len(page.Data) == 0 {
			fmt.Fprintln(w, "nothing waits for you")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CONFIRMATION\tPAYMENT\tAMOUNT\tMERCHANT\tAGENT\tMANDATE\tEXPIRES")
		for _, cf := range page.Data {
			p := &cf.Payment
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cf.ID, p.ID, money(p.Amount, p.Currency), p.MerchantID,
				orDash(string(p.AgentID)), orDash(string(p.MandateID)), stamp(cf.ExpiresAt))
		}
		tw.Flush()
		if page.HasMore {
			fmt.Fprintf(w, "more: paybound confirmations list --starting-after %s\n", page.Data[len(page.Data)-1].ID)
		}
		fmt.Fprintln(w, "approve: paybound approve cfm_… --totp CODE   deny: paybound deny cfm_…")
	})
}

// orDash shows an empty field as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (cl *cli) getPayment(args []string) error {
	c := cl.command("payments get", "payments get pay_…", false)
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	p, err := api.GetPayment(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(p, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		row := func(k, v string) {
			if v != "" {
				fmt.Fprintf(tw, "%s\t%s\n", k, v)
			}
		}
		row("id", p.ID)
		row("status", string(p.Status))
		row("amount", money(p.Amount, p.Currency))
		row("captured", money(p.AmountCaptured, p.Currency))
		row("refunded", money(p.AmountRefunded, p.Currency))
		if p.FeeAmount != 0 {
			row("fee", money(p.FeeAmount, p.Currency))
		}
		row("merchant", p.MerchantID)
		row("payer", p.PayerID)
		row("agent", string(p.AgentID))
		row("mandate", string(p.MandateID))
		row("description", p.Description)
		row("capture", string(p.CaptureMethod))
		if p.AuthorizationExpiresAt != nil {
			row("hold_expires", stamp(*p.AuthorizationExpiresAt))
		}
		row("decline_code", string(p.DeclineCode))
		if p.Confirmation != nil {
			row("confirm_at", p.Confirmation.URL)
		}
		row("created", stamp(p.CreatedAt))
		tw.Flush()
	})
}

func (cl *cli) balance(args []string) error {
	c := cl.command("balance", "balance", false)
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	bs, err := api.Balance(ctx)
	if err != nil {
		return err
	}
	v := struct {
		Object   string       `json:"object"`
		Balances []pb.Balance `json:"balances"`
	}{"balance", bs}
	return c.print(v, func(w io.Writer) {
		if len(bs) == 0 {
			fmt.Fprintln(w, "no balances")
			return
		}
		// Amounts right-aligned, so that their decimal points line up.
		rows := [][3]string{{"CURRENCY", "AVAILABLE", "PENDING"}}
		wa, wp := len(rows[0][1]), len(rows[0][2])
		for _, b := range bs {
			r := [3]string{b.Currency, pb.FormatAmount(b.Available, b.Currency), pb.FormatAmount(b.Pending, b.Currency)}
			wa, wp = max(wa, len(r[1])), max(wp, len(r[2]))
			rows = append(rows, r)
		}
		for _, r := range rows {
			fmt.Fprintf(w, "%-8s  %*s  %*s\n", r[0], wa, r[1], wp, r[2])
		}
	})
}

func (cl *cli) verifyLedger(args []string) error {
	c := cl.command("ledger verify", "ledger verify", false)
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	r, err := api.VerifyLedger(ctx)
	if err != nil {
		return err
	}
	if err := c.print(r, func(w io.Writer) {
		var cur []string
		for _, s := range r.Currencies {
			cur = append(cur, fmt.Sprintf("%s %s", s.Currency, pb.FormatAmount(s.Sum, s.Currency)))
		}
		sums := "no currencies yet"
		if len(cur) > 0 {
			sums = "sums: " + strings.Join(cur, ", ")
		}
		verdict := "ok"
		if !r.OK {
			verdict = "NOT OK"
		}
		fmt.Fprintf(w, "ledger %s: %d accounts, %d transfers checked; %s\n", verdict, r.AccountsChecked, r.TransfersChecked, sums)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  problem: %s\n", p)
		}
	}); err != nil {
		return err
	}
	if !r.OK {
		return fmt.Errorf("the ledger check found %d problems", len(r.Problems))
	}
	return nil
}
