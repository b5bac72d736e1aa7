package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	pb "github.com/paybound/paybound"
)

// billing is `paybound billing …`: Token Pay's calls (docs/tokenpay.md).
// The Go SDK has no Token Pay calls yet, so these speak the API's JSON
// themselves; they print it indented (the API's objects), or a summary.
func (cl *cli) billing(args []string) error {
	return cl.group("billing", args, map[string]func([]string) error{
		"price": cl.billingPrice, "grant": cl.billingGrant, "void": cl.billingVoid, "balance": cl.billingBalance,
		"usage": cl.billingUsage, "events": cl.billingEvents, "recharge": cl.billingRecharge, "invoice": cl.billingInvoice,
		"reserve": cl.billingReserve,
	})
}

// billingTimeout bounds one Token Pay call.
const billingTimeout = 60 * time.Second

// api calls the server with the parsed flags' URL and key: in as the JSON
// body (nil: none), out decoded from the answer. A POST carries
// --idempotency-key or a fresh key (but events, which their IDs
// deduplicate). An error answer is the API's message with its code.
func (c *cmd) api(method, path string, in, out any) error {
	u, err := c.serverURL()
	if err != nil {
		return err
	}
	key := c.key
	if key == "" {
		key = c.cl.getenv("PAYBOUND_KEY")
	}
	if key == "" {
		return errors.New("no API key: set PAYBOUND_KEY or pass --key")
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx := c.cl.ctx
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(u, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("User-Agent", "paybound-cli")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == "POST" && path != "/v1/billing/events" {
		idem := c.idem
		if idem == "" {
			idem = pb.NewID("cli-", time.Now()) // time first: see client's default
		}
		req.Header.Set("Idempotency-Key", idem)
	}
	res, err := (&http.Client{Timeout: billingTimeout}).Do(req)
	if err != nil {
		return fmt.Errorf("couldn't reach %s: %w", u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		var e struct{ Error pb.Error }
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return &e.Error
		}
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(b))
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, out)
}

func (cl *cli) billingPrice(args []string) error {
	c := cl.command("billing price", "billing price --model M (--unit-price 2.50 | --tiers 1000000:2.50,:1.25) --currency USD [--token-type output] [--meter mtr_…] [--effective-from T]", true)
	model := c.fs.String("model", "*", "a model, a prefix ending in *, or *")
	unit := c.fs.String("unit-price", "", "price per 1M units in the currency's major unit, up to 9 decimal places (required)")
	currency := c.fs.String("currency", "", "ISO 4217 code (required)")
	tokenType := c.fs.String("token-type", "", "input, cached_input, cache_write, output or reasoning (default: any)")
	meter := c.fs.String("meter", "", "a generic meter's ID (default: llm_tokens)")
	from := c.fs.String("effective-from", "", "RFC 3339 time this version applies from (default: now)")
	tiersS := c.fs.String("tiers", "", "a graduated price instead of --unit-price: up_to:unit_price,… per customer and month, the last without up_to (1000000:2.50,:1.25)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	body := map[string]any{"model": *model, "currency": strings.ToUpper(*currency), "token_type": *tokenType, "meter": *meter}
	if *tiersS == "" {
		body["unit_price"] = *unit
	} else {
		var tiers []any
		for _, t := range strings.Split(*tiersS, ",") {
			upTo, price, ok := strings.Cut(t, ":")
			if !ok {
				return fmt.Errorf("--tiers: %q is not up_to:unit_price (the last tier's up_to is empty)", t)
			}
			tier := map[string]any{"up_to": nil, "unit_price": price}
			if upTo != "" {
				n, err := strconv.ParseInt(upTo, 10, 64)
				if err != nil {
					return fmt.Errorf("--tiers: up_to %q is not a whole number", upTo)
				}
				tier["up_to"] = n
			}
			tiers = append(tiers, tier)
		}
		body["tiers"] = tiers
		if *unit != "" {
			body["unit_price"] = *unit // refused by the server: one or the other
		}
	}
	if *from != "" {
		body["effective_from"] = *from
	}
	var p pb.Price
	if err := c.api("POST", "/v1/billing/prices", body, &p); err != nil {
		return err
	}
	return c.print(&p, func(w io.Writer) {
		fmt.Fprintf(w, "%s v%d: %s %s per 1M %s tokens of %s, from %s\n", p.ID, p.Version, p.UnitPrice, p.Currency, cmpOr(p.TokenType, "all"), p.Model, stamp(p.EffectiveFrom))
		for i, t := range p.Tiers {
			upTo := "on"
			if t.UpTo != nil {
				upTo = "up to " + strconv.FormatInt(*t.UpTo, 10)
			}
			fmt.Fprintf(w, "  tier %d, %s: %s %s per 1M\n", i+1, upTo, t.UnitPrice, p.Currency)
		}
	})
}

func cmpOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (cl *cli) billingGrant(args []string) error {
	c := cl.command("billing grant", "billing grant usr_…|agt_… --amount 10.00 --currency USD [--category paid] [--priority 0] [--expires-in 720h]", true)
	amountS := c.fs.String("amount", "", "the credit as a decimal, such as 10.00 (required)")
	currency := c.fs.String("currency", "", "ISO 4217 code (required)")
	category := c.fs.String("category", "paid", "paid, promotional or included")
	priority := c.fs.Int("priority", 0, "lower is drawn first")
	expiresIn := c.fs.Duration("expires-in", 0, "expire after this long (default: never)")
	pos, err := c.parse(args, "CUSTOMER")
	if err != nil {
		return err
	}
	cur := strings.ToUpper(*currency)
	amount, err := pb.ParseAmount(*amountS, cur)
	if err != nil {
		return err
	}
	body := map[string]any{"customer": pos[0], "amount": amount, "currency": cur, "category": *category, "priority": *priority}
	if *expiresIn > 0 {
		body["expires_at"] = time.Now().Add(*expiresIn).UTC().Format(time.RFC3339)
	}
	var g pb.Grant
	if err := c.api("POST", "/v1/billing/grants", body, &g); err != nil {
		return err
	}
	return c.print(&g, func(w io.Writer) {
		fmt.Fprintf(w, "%s: %s of %s credit for %s\n", g.ID, money(g.Amount, g.Currency), g.Category, g.CustomerID)
	})
}

func (cl *cli) billingVoid(args []string) error {
	c := cl.command("billing void", "billing void grant_…", true)
	pos, err := c.parse(args, "GRANT_ID")
	if err != nil {
		return err
	}
	var g pb.Grant
	if err := c.api("POST", "/v1/billing/grants/"+url.PathEscape(pos[0])+"/void", map[string]any{}, &g); err != nil {
		return err
	}
	return c.print(&g, func(w io.Writer) { fmt.Fprintf(w, "%s voided; %s withdrawn\n", g.ID, money(g.Withdrawn, g.Currency)) })
}

func (cl *cli) billingBalance(args []string) error {
	c := cl.command("billing balance", "billing balance usr_…|agt_…|me [--provider mch_…]", false)
	provider := c.fs.String("provider", "", "the provider (a user's or agent's key must name it)")
	pos, err := c.parse(args, "CUSTOMER")
	if err != nil {
		return err
	}
	var b struct {
		CustomerID string `json:"customer_id"`
		Balances   []struct {
			Currency                     string
			Available, Reserved, Granted int64
		} `json:"balances"`
	}
	var raw []byte
	if err := c.api("GET", "/v1/billing/customers/"+url.PathEscape(pos[0])+"/balance?provider="+url.QueryEscape(*provider), nil, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return err
	}
	return c.print(json.RawMessage(raw), func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CURRENCY\tAVAILABLE\tRESERVED\tGRANTED")
		for _, x := range b.Balances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Currency, pb.FormatAmount(x.Available, x.Currency), pb.FormatAmount(x.Reserved, x.Currency), pb.FormatAmount(x.Granted, x.Currency))
		}
		tw.Flush()
	})
}

func (cl *cli) billingUsage(args []string) error {
	c := cl.command("billing usage", "billing usage usr_…|agt_…|me [--from T] [--to T] [--group-by model,token_type] [--provider mch_…]", false)
	provider := c.fs.String("provider", "", "the provider (a user's or agent's key must name it)")
	from := c.fs.String("from", "", "RFC 3339 start (default: 30 days ago)")
	to := c.fs.String("to", "", "RFC 3339 end, exclusive (default: now)")
	groupBy := c.fs.String("group-by", "model,token_type", "model, token_type, price, or a meter's group_by path, comma-separated")
	pos, err := c.parse(args, "CUSTOMER")
	if err != nil {
		return err
	}
	q := url.Values{"provider": {*provider}, "from": {*from}, "to": {*to}, "group_by": {*groupBy}}
	var raw []byte
	if err := c.api("GET", "/v1/billing/customers/"+url.PathEscape(pos[0])+"/usage?"+q.Encode(), nil, &raw); err != nil {
		return err
	}
	var u struct {
		Data []struct {
			Meter, Currency      string
			Keys                 map[string]string
			Events, Quantity     int64
			AmountExact          string `json:"amount_exact"`
			Charged, Uncollected int64
		}
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return err
	}
	return c.print(json.RawMessage(raw), func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "METER\tGROUP\tEVENTS\tQUANTITY\tEXACT\tCHARGED\tUNCOLLECTED")
		for _, d := range u.Data {
			var keys []string
			for _, g := range strings.Split(*groupBy, ",") {
				keys = append(keys, d.Keys[g])
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s %s\t%s\t%s\n", d.Meter, strings.Join(keys, "/"), d.Events, d.Quantity, d.AmountExact, d.Currency,
				pb.FormatAmount(d.Charged, d.Currency), pb.FormatAmount(d.Uncollected, d.Currency))
		}
		tw.Flush()
	})
}

func (cl *cli) billingEvents(args []string) error {
	c := cl.command("billing events", "billing events FILE.json|- (a JSON array of usage events, at most 1,000)", false)
	pos, err := c.parse(args, "FILE")
	if err != nil {
		return err
	}
	var b []byte
	if pos[0] == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	} else {
		b, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return err
	}
	var events []json.RawMessage
	if err := json.Unmarshal(b, &events); err != nil {
		return fmt.Errorf("%s must hold a JSON array of events: %w", pos[0], err)
	}
	var res struct {
		Accepted, Duplicates, Refused int
		Data                          []struct {
			ID, Status string
			Error      *pb.Error
		}
	}
	var raw []byte
	if err := c.api("POST", "/v1/billing/events", map[string]any{"events": events}, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	return c.print(json.RawMessage(raw), func(w io.Writer) {
		fmt.Fprintf(w, "%d accepted, %d duplicates, %d refused\n", res.Accepted, res.Duplicates, res.Refused)
		for _, d := range res.Data {
			if d.Error != nil {
				fmt.Fprintf(w, "  %s: %s (%s)\n", d.ID, d.Error.Message, d.Error.Code)
			}
		}
	})
}

func (cl *cli) billingReserve(args []string) error {
	c := cl.command("billing reserve", "billing reserve usr_…|agt_… (--estimate TOKENS --model M | --amount 1.00 --currency USD) [--expires-in 5m]", true)
	estimate := c.fs.Int64("estimate", 0, "units of the meter to reserve for")
	model := c.fs.String("model", "", "the model the estimate is priced at")
	amountS := c.fs.String("amount", "", "or an amount, as a decimal")
	currency := c.fs.String("currency", "", "the amount's currency")
	expiresIn := c.fs.Duration("expires-in", 0, "release it after this long (default 5m, at most 1h)")
	pos, err := c.parse(args, "CUSTOMER")
	if err != nil {
		return err
	}
	body := map[string]any{"customer": pos[0], "expires_in": int64(expiresIn.Seconds())}
	if *estimate > 0 {
		body["estimate"], body["model"] = *estimate, *model
	} else {
		cur := strings.ToUpper(*currency)
		amount, err := pb.ParseAmount(*amountS, cur)
		if err != nil {
			return err
		}
		body["amount"], body["currency"] = amount, cur
	}
	var r struct {
		Allowed                   bool
		ReservationID             string `json:"reservation_id"`
		Amount, Available         int64
		Currency, Reason, Message string
	}
	var raw []byte
	if err := c.api("POST", "/v1/billing/reservations", body, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	return c.print(json.RawMessage(raw), func(w io.Writer) {
		if r.Allowed {
			fmt.Fprintf(w, "%s holds %s; %s available\n", r.ReservationID, money(r.Amount, r.Currency), money(r.Available, r.Currency))
		} else {
			fmt.Fprintf(w, "refused (%s): %s\n", r.Reason, r.Message)
		}
	})
}

func (cl *cli) billingRecharge(args []string) error {
	c := cl.command("billing recharge", "billing recharge --provider mch_… --amount 20.00 --currency USD [--for agt_…] [--mandate mdt_…]", true)
	provider := c.fs.String("provider", "", "the provider to buy credit from (required)")
	amountS := c.fs.String("amount", "", "the amount to pay, as a decimal (required)")
	currency := c.fs.String("currency", "", "ISO 4217 code (required)")
	forC := c.fs.String("for", "", "the customer to credit (default: the caller; a user may name its agent)")
	mandate := c.fs.String("mandate", "", "the mandate an agent pays under")
	if _, err := c.parse(args); err != nil {
		return err
	}
	cur := strings.ToUpper(*currency)
	amount, err := pb.ParseAmount(*amountS, cur)
	if err != nil {
		return err
	}
	var p pb.Payment
	if err := c.api("POST", "/v1/billing/recharges", map[string]any{"provider": *provider, "customer": *forC, "amount": amount,
		"currency": cur, "mandate_id": *mandate}, &p); err != nil {
		return err
	}
	return c.print(&p, func(w io.Writer) { fmt.Fprintf(w, "%s %s %s\n", p.ID, p.Status, money(p.Amount, p.Currency)) })
}

func (cl *cli) billingInvoice(args []string) error {
	c := cl.command("billing invoice", "billing invoice usr_…|agt_… --period 2026-11 --currency USD [--csv] [--finalize]", true)
	period := c.fs.String("period", "", "the month, YYYY-MM (required)")
	currency := c.fs.String("currency", "", "ISO 4217 code (required)")
	asCSV := c.fs.Bool("csv", false, "print the invoice as CSV")
	finalize := c.fs.Bool("finalize", false, "finalize it (once the month and its grace period are over)")
	pos, err := c.parse(args, "CUSTOMER")
	if err != nil {
		return err
	}
	var inv struct {
		ID, Status, Currency string
		Usage                int64
		CreditsApplied       int64 `json:"credits_applied"`
		AmountDue            int64 `json:"amount_due"`
	}
	var raw []byte
	if err := c.api("POST", "/v1/billing/invoices", map[string]any{"customer": pos[0], "period": *period, "currency": strings.ToUpper(*currency)}, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &inv); err != nil {
		return err
	}
	if *finalize {
		c.idem = ""
		if err := c.api("POST", "/v1/billing/invoices/"+inv.ID+"/finalize", map[string]any{}, &raw); err != nil {
			return err
		}
		json.Unmarshal(raw, &inv)
	}
	if *asCSV {
		if err := c.api("GET", "/v1/billing/invoices/"+inv.ID+"?format=csv", nil, &raw); err != nil {
			return err
		}
		_, err := c.cl.stdout.Write(raw)
		return err
	}
	return c.print(json.RawMessage(raw), func(w io.Writer) {
		fmt.Fprintf(w, "%s (%s): usage %s, credits applied %s, due %s\n", inv.ID, inv.Status, money(inv.Usage, inv.Currency),
			money(inv.CreditsApplied, inv.Currency), money(inv.AmountDue, inv.Currency))
	})
}
