package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

func (cl *cli) disputes(args []string) error {
	return cl.group("disputes", args, map[string]func([]string) error{"open": cl.openDispute, "list": cl.listDisputes,
		"get": cl.getDispute, "resolve": cl.resolveDispute})
}

func printDispute(w io.Writer, d *pb.Dispute) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("id", d.ID)
	row("status", d.Status)
	row("payment", d.PaymentID)
	row("amount", money(d.Amount, d.Currency))
	row("reason", string(d.Reason))
	row("details", d.Details)
	row("attribution", string(d.Proposal.Attribution))
	row("check", d.Proposal.Check)
	row("explanation", d.Proposal.Explanation)
	row("evidence", fmt.Sprint(d.Proposal.Evidence))
	if r := d.Resolution; r != nil {
		row("outcome", r.Outcome)
		row("liable", r.LiableParty)
		row("paid back", money(r.Amount, d.Currency))
		row("refund", r.RefundID)
		row("compensation", r.CompensationID)
		row("resolved", stamp(r.ResolvedAt))
	}
	tw.Flush()
}

func (cl *cli) openDispute(args []string) error {
	c := cl.command("disputes open", "disputes open pay_… --reason R [--details D]", true)
	reason := c.fs.String("reason", "", "not_as_intended, unauthorized, merchant_error, duplicate or other (required)")
	details := c.fs.String("details", "", "what went wrong, in your words")
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	d, err := api.OpenDispute(ctx, pos[0], pb.DisputeReason(*reason), *details)
	if err != nil {
		return err
	}
	return c.print(d, func(w io.Writer) { printDispute(w, d) })
}

func (cl *cli) resolveDispute(args []string) error {
	c := cl.command("disputes resolve", "disputes resolve dsp_… --outcome refund_full|refund_partial|reject --liable PARTY [--amount 1.00]", true)
	outcome := c.fs.String("outcome", "", "refund_full, refund_partial or reject (required)")
	liable := c.fs.String("liable", "", "who bears it: merchant (refunds), agent_operator or platform (the platform compensates), user (reject)")
	amountS := c.fs.String("amount", "", "for refund_partial: how much, as a decimal in the payment's currency")
	pos, api, ctx, err := c.call(args, "DISPUTE_ID")
	if err != nil {
		return err
	}
	p := client.ResolveParams{Outcome: *outcome, LiableParty: *liable}
	if *amountS != "" {
		d, err := api.GetDispute(ctx, pos[0])
		if err != nil {
			return err
		}
		a, err := pb.ParseAmount(*amountS, d.Currency)
		if err != nil {
			return err
		}
		p.Amount = &a
	}
	d, err := api.ResolveDispute(ctx, pos[0], p)
	if err != nil {
		return err
	}
	return c.print(d, func(w io.Writer) { printDispute(w, d) })
}

func (cl *cli) getDispute(args []string) error {
	c := cl.command("disputes get", "disputes get dsp_…", false)
	pos, api, ctx, err := c.call(args, "DISPUTE_ID")
	if err != nil {
		return err
	}
	d, err := api.GetDispute(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(d, func(w io.Writer) { printDispute(w, d) })
}

func (cl *cli) listDisputes(args []string) error {
	c := cl.command("disputes list", "disputes list [--status open|resolved] [--limit N] [--starting-after dsp_…]", false)
	status := c.fs.String("status", "", "only open or only resolved disputes")
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last dispute ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	l, err := api.ListDisputes(ctx, *status, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tPAYMENT\tAMOUNT\tREASON\tATTRIBUTION")
		for _, d := range l.Data {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, d.PaymentID, money(d.Amount, d.Currency), d.Reason, d.Proposal.Attribution)
		}
		tw.Flush()
		if l.HasMore {
			fmt.Fprintf(w, "more: --starting-after %s\n", l.Data[len(l.Data)-1].ID)
		}
	})
}
