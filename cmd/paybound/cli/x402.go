package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

func (cl *cli) x402(args []string) error {
	return cl.group("x402", args, map[string]func([]string) error{"fetch": cl.x402Fetch, "serve-demo": cl.x402ServeDemo})
}

// parseAtomic reads a decimal amount in the currency's major unit ("0.0001")
// as x402 atomic units (10^-6 of the major unit), never rounding.
func parseAtomic(s, param string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	bad := fmt.Errorf("--%s %q must be a decimal amount with at most %d decimals, such as 0.0001", param, s, wire.AtomicDecimals)
	if whole == "" || len(frac) > wire.AtomicDecimals || strings.TrimLeft(whole+frac, "0123456789") != "" {
		return 0, bad
	}
	digits := strings.TrimLeft(whole+frac+strings.Repeat("0", wire.AtomicDecimals-len(frac)), "0")
	if digits == "" {
		digits = "0"
	}
	n, err := wire.ParseAtomic(digits)
	if err != nil {
		return 0, bad
	}
	return n, nil
}

// formatAtomic renders atomic units as a decimal of the major unit.
func formatAtomic(n int64) string {
	s := fmt.Sprintf("%07d", n)
	i := len(s) - wire.AtomicDecimals
	return strings.TrimRight(strings.TrimRight(s[:i]+"."+s[i:], "0"), ".")
}

func (cl *cli) x402Fetch(args []string) error {
	c := cl.command("x402 fetch", "x402 fetch URL --mandate mdt_… [--agent-key FILE] [--max 0.05] [--max-hour 1.00] [--currency USD] [--tab 1.00]", false)
	keyFile := c.fs.String("agent-key", "", "the paying agent's private key file (default $PAYBOUND_AGENT_KEY)")
	mandate := c.fs.String("mandate", "", "the mandate the agent pays under (required)")
	maxS := c.fs.String("max", "0.05", "the most one request may cost, in the currency's unit")
	hourS := c.fs.String("max-hour", "1.00", "the most all requests may cost in an hour (tab deposits count)")
	currency := c.fs.String("currency", "USD", "the currency it pays in")
	tabS := c.fs.String("tab", "", "open a tab of this much with sellers that accept tabs (sub-cent prices)")
	method := c.fs.String("method", "GET", "the request's method")
	data := c.fs.String("data", "", "the request's body")
	pos, err := c.parse(args, "URL")
	if err != nil {
		return err
	}
	if *mandate == "" {
		return errors.New("--mandate is required: the mandate the agent pays under")
	}
	file := *keyFile
	if file == "" {
		file = c.cl.getenv("PAYBOUND_AGENT_KEY")
	}
	if file == "" {
		return errors.New("paying needs the agent's private key: set PAYBOUND_AGENT_KEY=agent.key or pass --agent-key agent.key")
	}
	_, priv, err := loadAgentKey(file)
	if err != nil {
		return err
	}
	tr := &x402.Transport{Payer: x402.Payer{Key: priv, Mandate: *mandate}, Asset: *currency}
	if tr.MaxPerRequest, err = parseAtomic(*maxS, "max"); err != nil {
		return err
	}
	if tr.MaxPerHour, err = parseAtomic(*hourS, "max-hour"); err != nil {
		return err
	}
	if *tabS != "" {
		if tr.TabDeposit, err = parseAtomic(*tabS, "tab"); err != nil {
			return err
		}
	}
	var body io.Reader
	if *data != "" {
		body = strings.NewReader(*data)
	}
	ctx, cancel := context.WithTimeout(c.cl.ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, *method, pos[0], body)
	if err != nil {
		return fmt.Errorf("couldn't make the request: %w", err)
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return err
	}
	var sr x402.SettlementResponse
	paid := wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentResponse), &sr) == nil
	out := map[string]any{"status": res.StatusCode, "body": string(raw)}
	if paid {
		out["payment"] = sr
	}
	return c.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "status %d\n", res.StatusCode)
		if paid && sr.Success {
			fmt.Fprintf(w, "paid %s %s", formatAtomic(atoi(sr.Amount)), *currency)
			if sr.Transaction != "" {
				fmt.Fprintf(w, " (payment %s)", sr.Transaction)
			} else {
				fmt.Fprint(w, " (on a tab)")
			}
			fmt.Fprintln(w)
		} else if paid {
			fmt.Fprintf(w, "not paid: %s\n", sr.ErrorReason)
		}
		w.Write(bytes.TrimRight(raw, "\n"))
		fmt.Fprintln(w)
	})
}

func atoi(s string) int64 {
	n, _ := wire.ParseAtomic(s)
	return n
}

// x402ServeDemo serves a paid API: /quote (exact) and /echo (a sub-cent
// price, payable with a tab), until interrupted; then it claims its tabs.
func (cl *cli) x402ServeDemo(args []string) error {
	c := cl.command("x402 serve-demo", "x402 serve-demo --merchant mch_… [--addr 127.0.0.1:8402] [--price 0.01] [--tick 0.0001] [--tabs FILE]", false)
	merchant := c.fs.String("merchant", "", "the seller: a merchant ID (required); --key is its API key, which claims tabs")
	addr := c.fs.String("addr", "127.0.0.1:8402", "where to listen")
	priceS := c.fs.String("price", "0.01", "the price of /quote (exact)")
	tickS := c.fs.String("tick", "0.0001", "the price of /echo (exact, or a tab's voucher)")
	currency := c.fs.String("currency", "USD", "the currency of the prices")
	network := c.fs.String("network", "paybound:local", "the facilitator's network")
	tabsFile := c.fs.String("tabs", "x402-tabs.jsonl", "the file where vouchers are kept until they are claimed")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if !pb.HasPrefix(*merchant, pb.PrefixMerchant) {
		return errors.New("--merchant must be the seller's merchant ID (mch_…)")
	}
	price, err := parseAtomic(*priceS, "price")
	if err != nil {
		return err
	}
	tick, err := parseAtomic(*tickS, "tick")
	if err != nil {
		return err
	}
	base, err := c.serverURL()
	if err != nil {
		return err
	}
	key := c.key
	if key == "" {
		key = c.cl.getenv("PAYBOUND_KEY")
	}
	st, err := x402.OpenFileTabStore(*tabsFile)
	if err != nil {
		return err
	}
	defer st.Close()
	fac := &x402.FacilitatorClient{URL: strings.TrimSuffix(base, "/") + "/x402"}
	claims := &x402.FacilitatorClient{URL: fac.URL, Header: http.Header{"Authorization": {"Bearer " + key}}}
	quote := &x402.Middleware{Network: *network, PayTo: *merchant, Facilitator: fac, Price: x402.Fixed(price, *currency, "a quote")}
	echo := &x402.Middleware{Network: *network, PayTo: *merchant, Facilitator: fac, Price: x402.Fixed(tick, *currency, "an echo"),
		Tabs: &x402.Tabs{Store: st, MinDeposit: 100 * tick, Claims: claims}}
	mux := http.NewServeMux()
	mux.Handle("GET /quote", quote.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"quote":"the early bird pays the worm","at":%q}`+"\n", time.Now().UTC().Format(time.RFC3339))
	})))
	mux.Handle("/echo", echo.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
	})))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("couldn't listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.cl.stdout, "serving a paid API on http://%s: /quote costs %s %s, /echo %s %s (tabs welcome); facilitator %s\n",
		ln.Addr(), *priceS, *currency, *tickS, *currency, fac.URL)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-c.cl.ctx.Done():
	case err := <-done:
		return err
	}
	shut, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	if err := echo.ClaimAll(shut); err != nil {
		fmt.Fprintf(c.cl.stderr, "couldn't claim every tab (%v); they are kept in %s for the next start\n", err, *tabsFile)
		return nil
	}
	fmt.Fprintln(c.cl.stdout, "claimed every tab")
	return nil
}
