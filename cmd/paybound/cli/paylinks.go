package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

func (cl *cli) links(args []string) error {
	return cl.group("links", args, map[string]func([]string) error{"create": cl.createLink, "list": cl.listLinks,
		"get": cl.getLink, "deactivate": cl.deactivateLink, "pay": cl.payLink, "offer": cl.linkOffer})
}

func printLink(w io.Writer, l *pb.PayLink) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\nurl\t%s\namount\t%s\ndescription\t%s\nactive\t%v\n", l.ID, l.URL, money(l.Amount, l.Currency), l.Description, l.Active)
	uses := fmt.Sprint(l.Uses)
	if l.MaxUses > 0 {
		uses += fmt.Sprintf(" of %d", l.MaxUses)
	}
	fmt.Fprintf(tw, "uses\t%s\n", uses)
	if l.ExpiresAt != nil {
		fmt.Fprintf(tw, "expires\t%s\n", stamp(*l.ExpiresAt))
	}
	tw.Flush()
}

func (cl *cli) createLink(args []string) error {
	c := cl.command("links create", "links create --amount 12.50 --currency USD --description D [--expires-in 24h] [--max-uses N]", true)
	amountS := c.fs.String("amount", "", "the amount as a decimal, such as 12.50 (required)")
	currencyS := c.fs.String("currency", "", "ISO 4217 currency code, such as USD (required)")
	description := c.fs.String("description", "", "what the link sells, shown to payers (required)")
	expiresIn := c.fs.Duration("expires-in", 0, "stop taking payments after this long (default: never)")
	maxUses := c.fs.Int64("max-uses", 0, "take at most this many payments (default: no limit)")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	if *amountS == "" || *currencyS == "" {
		return errors.New("--amount and --currency are required")
	}
	currency := strings.ToUpper(*currencyS)
	amount, err := pb.ParseAmount(*amountS, currency)
	if err != nil {
		return err
	}
	p := client.PaymentLinkParams{Amount: amount, Currency: currency, Description: *description, MaxUses: *maxUses}
	if *expiresIn != 0 {
		p.ExpiresAt = time.Now().Add(*expiresIn)
	}
	l, err := api.CreatePaymentLink(ctx, p)
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) { printLink(w, l) })
}

func (cl *cli) getLink(args []string) error {
	c := cl.command("links get", "links get plink_…", false)
	pos, api, ctx, err := c.call(args, "LINK_ID")
	if err != nil {
		return err
	}
	l, err := api.GetPaymentLink(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) { printLink(w, l) })
}

func (cl *cli) deactivateLink(args []string) error {
	c := cl.command("links deactivate", "links deactivate plink_…", true)
	pos, api, ctx, err := c.call(args, "LINK_ID")
	if err != nil {
		return err
	}
	l, err := api.DeactivatePaymentLink(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) { printLink(w, l) })
}

func (cl *cli) listLinks(args []string) error {
	c := cl.command("links list", "links list [--limit N] [--starting-after plink_…]", false)
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last link ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	l, err := api.ListPaymentLinks(ctx, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAMOUNT\tACTIVE\tUSES\tDESCRIPTION")
		for _, x := range l.Data {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\n", x.ID, money(x.Amount, x.Currency), x.Active, x.Uses, x.Description)
		}
		tw.Flush()
		if l.HasMore {
			fmt.Fprintf(w, "more: --starting-after %s\n", l.Data[len(l.Data)-1].ID)
		}
	})
}

func (cl *cli) payLink(args []string) error {
	c := cl.command("links pay", "links pay plink_… [--mandate mdt_…]", true)
	mandate := c.fs.String("mandate", "", "the mandate an agent pays under, mdt_…")
	pos, api, ctx, err := c.call(args, "LINK_ID")
	if err != nil {
		return err
	}
	p, err := api.PayPaymentLink(ctx, pos[0], *mandate)
	if err != nil {
		return err
	}
	return c.print(p, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s %s\n", p.ID, p.Status, money(p.Amount, p.Currency))
	})
}

func (cl *cli) linkOffer(args []string) error {
	c := cl.command("links offer", "links offer plink_…", false)
	pos, err := c.parse(args, "LINK_ID")
	if err != nil {
		return err
	}
	u, err := c.serverURL()
	if err != nil {
		return err
	}
	// The offer is public: no key is sent.
	o, err := client.New(u, "", client.WithUserAgent("paybound-cli")).PaymentLinkOffer(c.cl.ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(o, func(w io.Writer) {
		fmt.Fprintf(w, "%s: %s %s to %s (%s), %s\n", o.ID, o.AmountDisplay, o.Currency, o.MerchantName, o.MerchantID, o.Status)
		fmt.Fprintf(w, "%s\npay: %s %s\n", o.Description, o.Pay.Method, o.Pay.URL)
	})
}
