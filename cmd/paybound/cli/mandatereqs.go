package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

// requestMandate is `paybound mandates request`: an agent asks its user
// for a mandate.
func (cl *cli) requestMandate(args []string) error {
	c := cl.command("mandates request", `mandates request --reason "…" --description "…" --currency CNY --max 30.00 --budget 150.00 [--period week] [flags]`, true)
	f := mandateFlags{agentOptional: true}
	reason := c.fs.String("reason", "", "why you need the mandate, shown to your user (required)")
	if err := f.parse(c, args, "the agent itself, agt_… (default: the caller)", "the mandate's intent as your user would say it (required)"); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return errors.New("--reason is required: tell your user why you need this mandate")
	}
	p, err := f.params()
	if err != nil {
		return err
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	r, err := api.RequestMandate(ctx, client.CreateMandateRequestParams{CreateMandateParams: p, Reason: *reason})
	if err != nil {
		return err
	}
	return c.print(r, func(w io.Writer) {
		fmt.Fprintf(w, "%s pending until %s: your user approves or refuses it\n", r.ID, stamp(r.ExpiresAt))
	})
}

// listMandateRequests is `paybound mandates requests`: a user's requests
// (pending first) or an agent's own.
func (cl *cli) listMandateRequests(args []string) error {
	c := cl.command("mandates requests", "mandates requests [--status pending|approved|refused|expired] [--limit N] [--starting-after mreq_…]", false)
	status := c.fs.String("status", "", "only requests with this status")
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last request ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	page, err := api.ListMandateRequests(ctx, *status, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(page, func(w io.Writer) {
		if len(page.Data) == 0 {
			fmt.Fprintln(w, "no mandate requests")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tAGENT\tTERMS\tREASON")
		for i := range page.Data {
			r := &page.Data[i]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%q\n", r.ID, r.Status, r.AgentID, termsLine(&r.Terms), r.Reason)
		}
		tw.Flush()
	})
}

// termsLine is a mandate's main terms in a few words.
func termsLine(m *pb.Mandate) string {
	return fmt.Sprintf("up to %s per payment, %s per %s — %q", money(m.MaxAmount, m.Currency),
		money(m.Budget.Amount, m.Currency), m.Budget.Period, m.Description)
}

func (cl *cli) approveMandateRequest(args []string) error {
	return cl.decideMandateRequest("approve", args, (*client.Client).ApproveMandateRequest)
}

func (cl *cli) refuseMandateRequest(args []string) error {
	return cl.decideMandateRequest("refuse", args, (*client.Client).RefuseMandateRequest)
}

func (cl *cli) decideMandateRequest(verb string, args []string, decide func(*client.Client, context.Context, string) (*client.MandateRequest, error)) error {
	c := cl.command("mandates "+verb, "mandates "+verb+" mreq_…", true)
	pos, api, ctx, err := c.call(args, "mreq_…")
	if err != nil {
		return err
	}
	r, err := decide(api, ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(r, func(w io.Writer) {
		if r.MandateID != "" {
			fmt.Fprintf(w, "%s approved: mandate %s granted to %s\n", r.ID, r.MandateID, r.AgentID)
			return
		}
		fmt.Fprintf(w, "%s %s\n", r.ID, r.Status)
	})
}
