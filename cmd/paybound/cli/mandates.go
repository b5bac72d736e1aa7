package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

// mandates dispatches `paybound mandates create|list|get|revoke|…`.
func (cl *cli) mandates(args []string) error {
	return cl.group("mandates", args, map[string]func([]string) error{
		"create": cl.createMandate, "list": cl.listMandates, "get": cl.getMandate, "revoke": cl.revokeMandate,
		"request": cl.requestMandate, "requests": cl.listMandateRequests, "approve": cl.approveMandateRequest, "refuse": cl.refuseMandateRequest,
		"card": cl.issueCard, "cards": cl.listCards, "revoke-card": cl.revokeCard})
}

// mandateFlags are the flags of mandates create.
type mandateFlags struct {
	agent, description, currency, max, budget, period string
	merchants, categories, days, hours, zone          string
	confirmAbove, condition                           string
	expiresIn                                         time.Duration
	maxPayments                                       int64
	// agentOptional: --agent may be left out (an agent asking for itself).
	agentOptional bool
	// requireSignature is nil unless --require-signature was given: the
	// server's setting applies.
	requireSignature *bool
}

func (cl *cli) createMandate(args []string) error {
	c := cl.command("mandates create", `mandates create --agent agt_… --description "…" --currency CNY --max 30.00 --budget 150.00 [--period week] [flags]`, true)
	var f mandateFlags
	if err := f.parse(c, args, "the agent the mandate is for, agt_… (required)", "your intent in your own words, kept verbatim (required)"); err != nil {
		return err
	}
	p, err := f.params()
	if err != nil {
		return err
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	m, err := api.CreateMandate(ctx, p)
	if err != nil {
		return err
	}
	return c.print(m, func(w io.Writer) { fmt.Fprintln(w, mandateLine(m)) })
}

// parse registers the mandate's flags on c (agentHelp and descHelp say
// what --agent and --description are for this command) and parses args.
func (f *mandateFlags) parse(c *cmd, args []string, agentHelp, descHelp string) error {
	c.fs.StringVar(&f.agent, "agent", "", agentHelp)
	c.fs.StringVar(&f.description, "description", "", descHelp)
	c.fs.StringVar(&f.currency, "currency", "", "ISO 4217 currency code (required)")
	c.fs.StringVar(&f.max, "max", "", "the most one payment may be, such as 30.00 (required)")
	c.fs.StringVar(&f.budget, "budget", "", "what the agent may spend per period, such as 150.00 (required)")
	c.fs.StringVar(&f.period, "period", "total", "day, week, month or total")
	c.fs.StringVar(&f.merchants, "merchants", "", "comma-separated merchant IDs allowed (default: any)")
	c.fs.StringVar(&f.categories, "categories", "", "comma-separated merchant categories allowed (default: any)")
	c.fs.StringVar(&f.days, "days", "", "schedule: comma-separated days, such as mon,tue,wed,thu,fri")
	c.fs.StringVar(&f.hours, "hours", "", "schedule: a window such as 07:00-10:00 (with --days)")
	c.fs.StringVar(&f.zone, "time-zone", "UTC", "schedule and budget periods' time zone, such as Asia/Shanghai")
	c.fs.DurationVar(&f.expiresIn, "expires-in", 0, "end the mandate after this long (default: until revoked)")
	c.fs.Int64Var(&f.maxPayments, "max-payments", 0, "the most payments ever (default: no cap)")
	c.fs.StringVar(&f.confirmAbove, "confirm-above", "", "payments above this amount need your confirmation")
	c.fs.StringVar(&f.condition, "condition", "", "a CEL condition, such as 'now.getHours(\"Asia/Shanghai\") < 10'")
	reqSig := c.fs.Bool("require-signature", false, "accept only signed agent requests; =false to accept bearer keys (default: the server's setting)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	c.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "require-signature" {
			f.requireSignature = reqSig
		}
	})
	return nil
}

// params checks the flags and turns them into the mandate to ask for:
// amounts in the currency's minor units, lists split at commas, the
// expiry from now.
func (f *mandateFlags) params() (client.CreateMandateParams, error) {
	var p client.CreateMandateParams
	switch {
	case f.agent == "" && !f.agentOptional:
		return p, errors.New("--agent is required")
	case f.currency == "" || f.max == "" || f.budget == "":
		return p, errors.New("--currency, --max and --budget are required")
	case (f.days == "") != (f.hours == ""):
		return p, errors.New("--days and --hours go together")
	}
	cur := strings.ToUpper(f.currency)
	p = client.CreateMandateParams{AgentID: f.agent, Description: f.description, Currency: cur,
		Budget: pb.Budget{Period: pb.BudgetPeriod(f.period)}, MaxPayments: f.maxPayments, Condition: f.condition,
		RequireSignature: f.requireSignature}
	var err error
	if p.MaxAmount, err = pb.ParseAmount(f.max, cur); err != nil {
		return p, err
	}
	if p.Budget.Amount, err = pb.ParseAmount(f.budget, cur); err != nil {
		return p, err
	}
	if f.confirmAbove != "" {
		if p.ConfirmAbove, err = pb.ParseAmount(f.confirmAbove, cur); err != nil {
			return p, err
		}
	}
	if f.merchants != "" {
		p.MerchantIDs = strings.Split(f.merchants, ",")
	}
	if f.categories != "" {
		p.Categories = strings.Split(f.categories, ",")
	}
	if f.days != "" {
		start, end, ok := strings.Cut(f.hours, "-")
		if !ok {
			return p, errors.New("--hours must look like 07:00-10:00")
		}
		p.Schedule = &pb.Schedule{Days: strings.Split(f.days, ","), Start: start, End: end, TimeZone: f.zone}
	}
	if f.expiresIn > 0 {
		t := time.Now().Add(f.expiresIn).UTC().Truncate(time.Second)
		p.ExpiresAt = &t
	}
	return p, nil
}

func mandateLine(m *client.Mandate) string {
	state := "active"
	if m.RevokedAt != nil {
		state = "revoked"
	}
	return fmt.Sprintf("%s %s for %s: up to %s per payment, %s left of %s per %s, payments so far: %d — %q",
		m.ID, state, m.AgentID, money(m.MaxAmount, m.Currency), pb.FormatAmount(m.RemainingBudget, m.Currency),
		pb.FormatAmount(m.Budget.Amount, m.Currency), m.Budget.Period, m.PaymentsCount, m.Description)
}

func (cl *cli) listMandates(args []string) error {
	c := cl.command("mandates list", "mandates list [--limit N] [--starting-after mdt_…]", false)
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last mandate ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	page, err := api.ListMandates(ctx, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(page, func(w io.Writer) {
		if len(page.Data) == 0 {
			fmt.Fprintln(w, "no mandates")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAGENT\tMAX\tLEFT\tBUDGET\tPAYMENTS\tSTATE")
		for i := range page.Data {
			m := &page.Data[i]
			state := "active"
			if m.RevokedAt != nil {
				state = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%d\t%s\n", m.ID, m.AgentID, money(m.MaxAmount, m.Currency),
				pb.FormatAmount(m.RemainingBudget, m.Currency), pb.FormatAmount(m.Budget.Amount, m.Currency),
				m.Budget.Period, m.PaymentsCount, state)
		}
		tw.Flush()
	})
}

func (cl *cli) getMandate(args []string) error {
	c := cl.command("mandates get", "mandates get mdt_…", false)
	pos, api, ctx, err := c.call(args, "mdt_…")
	if err != nil {
		return err
	}
	m, err := api.GetMandate(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(m, func(w io.Writer) { fmt.Fprintln(w, mandateLine(m)) })
}

func (cl *cli) revokeMandate(args []string) error {
	c := cl.command("mandates revoke", "mandates revoke mdt_…", true)
	pos, api, ctx, err := c.call(args, "mdt_…")
	if err != nil {
		return err
	}
	m, err := api.RevokeMandate(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(m, func(w io.Writer) { fmt.Fprintf(w, "%s revoked at %s\n", m.ID, stamp(*m.RevokedAt)) })
}

// totp dispatches `paybound totp enroll|verify`.
func (cl *cli) totp(args []string) error {
	return cl.group("totp", args, map[string]func([]string) error{"enroll": cl.enrollTOTP, "verify": cl.verifyTOTP})
}

func (cl *cli) enrollTOTP(args []string) error {
	c := cl.command("totp enroll", "totp enroll", true)
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	e, err := api.EnrollTOTP(ctx)
	if err != nil {
		return err
	}
	return c.print(e, func(w io.Writer) {
		fmt.Fprintf(w, "secret %s\n%s\n(add it to an authenticator app, then: paybound totp verify CODE)\n", e.Secret, e.OTPAuthURL)
	})
}

func (cl *cli) verifyTOTP(args []string) error {
	c := cl.command("totp verify", "totp verify CODE", true)
	pos, api, ctx, err := c.call(args, "CODE")
	if err != nil {
		return err
	}
	e, err := api.VerifyTOTP(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(e, func(w io.Writer) { fmt.Fprintln(w, "one-time codes are active") })
}

func (cl *cli) approve(args []string) error {
	c := cl.command("approve", "approve cfm_… --totp 123456", true)
	code := c.fs.String("totp", "", "a current one-time code of your authenticator app (required)")
	pos, err := c.parse(args, "cfm_…")
	if err != nil {
		return err
	}
	if *code == "" {
		return errors.New("--totp is required")
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	p, err := api.Approve(ctx, pos[0], *code)
	if err != nil {
		return err
	}
	return c.print(p, func(w io.Writer) { fmt.Fprintln(w, paymentLine(p)) })
}

func (cl *cli) deny(args []string) error {
	c := cl.command("deny", "deny cfm_…", true)
	pos, api, ctx, err := c.call(args, "cfm_…")
	if err != nil {
		return err
	}
	p, err := api.Deny(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(p, func(w io.Writer) { fmt.Fprintln(w, paymentLine(p)) })
}
