package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

func (cl *cli) webhooks(args []string) error {
	return cl.group("webhook", args, map[string]func([]string) error{"create": cl.createWebhook, "list": cl.listWebhooks,
		"get": cl.getWebhook, "update": cl.updateWebhook, "delete": cl.deleteWebhook, "rotate": cl.rotateWebhook,
		"test": cl.testWebhook, "deliveries": cl.webhookDeliveries, "redeliver": cl.redeliverWebhook, "key": cl.webhookKey})
}

func printEndpoint(w io.Writer, e *pb.WebhookEndpoint) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("id", e.ID)
	row("url", e.URL)
	row("events", strings.Join(e.Events, ", "))
	row("format", e.Format)
	row("status", e.Status)
	row("disabled by", e.DisabledReason)
	row("description", e.Description)
	if e.FailingSince != nil {
		row("failing since", stamp(*e.FailingSince))
	}
	if e.PreviousExpiresAt != nil {
		row("old secret until", stamp(*e.PreviousExpiresAt))
	}
	tw.Flush()
	if e.Secret != "" {
		fmt.Fprintf(w, "\nsecret (shown once; keep it to verify deliveries):\n  %s\n", e.Secret)
	}
}

// events reads a comma list (--events, --x402-allow), without blanks.
func commaList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func (cl *cli) createWebhook(args []string) error {
	c := cl.command("webhook create", "webhook create URL --events payment.captured,refund.succeeded|'*' [--format acp] [--description D]", true)
	evs := c.fs.String("events", "", "event types, comma-separated, or * for all (required)")
	format := c.fs.String("format", "", "standard (default) or acp")
	desc := c.fs.String("description", "", "what it is for")
	pos, api, ctx, err := c.call(args, "URL")
	if err != nil {
		return err
	}
	e, err := api.CreateWebhookEndpoint(ctx, client.CreateWebhookEndpointParams{URL: pos[0], Events: commaList(*evs), Format: *format, Description: *desc})
	if err != nil {
		return err
	}
	return c.print(e, func(w io.Writer) { printEndpoint(w, e) })
}

func (cl *cli) listWebhooks(args []string) error {
	c := cl.command("webhook list", "webhook list [--limit N] [--starting-after we_…]", false)
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last endpoint ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	l, err := api.ListWebhookEndpoints(ctx, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tURL\tEVENTS")
		for _, e := range l.Data {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Status, e.URL, strings.Join(e.Events, ","))
		}
		tw.Flush()
		if l.HasMore {
			fmt.Fprintf(w, "more: --starting-after %s\n", l.Data[len(l.Data)-1].ID)
		}
	})
}

func (cl *cli) getWebhook(args []string) error {
	c := cl.command("webhook get", "webhook get we_…", false)
	pos, api, ctx, err := c.call(args, "ENDPOINT_ID")
	if err != nil {
		return err
	}
	e, err := api.GetWebhookEndpoint(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(e, func(w io.Writer) { printEndpoint(w, e) })
}

func (cl *cli) updateWebhook(args []string) error {
	c := cl.command("webhook update", "webhook update we_… [--url-to URL] [--events …] [--description D] [--disable|--enable]", true)
	to := c.fs.String("url-to", "", "a new URL")
	evs := c.fs.String("events", "", "new event types, comma-separated, or *")
	desc := c.fs.String("description", "", "a new description")
	disable := c.fs.Bool("disable", false, "stop deliveries (they wait, pending)")
	enable := c.fs.Bool("enable", false, "resume deliveries")
	pos, api, ctx, err := c.call(args, "ENDPOINT_ID")
	if err != nil {
		return err
	}
	var p client.UpdateWebhookEndpointParams
	if *to != "" {
		p.URL = to
	}
	if *evs != "" {
		p.Events = commaList(*evs)
	}
	if *desc != "" {
		p.Description = desc
	}
	if *disable || *enable {
		p.Disabled = disable
	}
	e, err := api.UpdateWebhookEndpoint(ctx, pos[0], p)
	if err != nil {
		return err
	}
	return c.print(e, func(w io.Writer) { printEndpoint(w, e) })
}

func (cl *cli) deleteWebhook(args []string) error {
	c := cl.command("webhook delete", "webhook delete we_…", false)
	pos, api, ctx, err := c.call(args, "ENDPOINT_ID")
	if err != nil {
		return err
	}
	if err := api.DeleteWebhookEndpoint(ctx, pos[0]); err != nil {
		return err
	}
	out := map[string]any{"id": pos[0], "object": "webhook_endpoint", "deleted": true}
	return c.print(out, func(w io.Writer) { fmt.Fprintf(w, "deleted %s; its pending deliveries are canceled\n", pos[0]) })
}

func (cl *cli) rotateWebhook(args []string) error {
	c := cl.command("webhook rotate", "webhook rotate we_…", true)
	pos, api, ctx, err := c.call(args, "ENDPOINT_ID")
	if err != nil {
		return err
	}
	e, err := api.RotateWebhookSecret(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(e, func(w io.Writer) {
		printEndpoint(w, e)
		fmt.Fprintln(w, "the old secret signs deliveries beside the new one for 24 hours")
	})
}

func (cl *cli) testWebhook(args []string) error {
	c := cl.command("webhook test", "webhook test we_…", true)
	pos, api, ctx, err := c.call(args, "ENDPOINT_ID")
	if err != nil {
		return err
	}
	ev, err := api.TestWebhookEndpoint(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(ev, func(w io.Writer) {
		fmt.Fprintf(w, "sent %s (%s); see `paybound webhook deliveries %s`\n", ev.ID, ev.Type, pos[0])
	})
}

func (cl *cli) webhookDeliveries(args []string) error {
	c := cl.command("webhook deliveries", "webhook deliveries we_… [--limit N] [--starting-after whd_…]", false)
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last delivery ID of the previous page")
	pos, api, ctx, err := c.call(args, "ENDPOINT_ID")
	if err != nil {
		return err
	}
	l, err := api.ListWebhookDeliveries(ctx, pos[0], client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEVENT\tTYPE\tSTATUS\tATTEMPTS\tLAST\tNEXT")
		for _, d := range l.Data {
			last := "-"
			if d.Attempts > 0 {
				last = fmt.Sprintf("%d %s", d.LastStatusCode, d.LastError)
			}
			next := "-"
			if d.NextAttemptAt != nil {
				next = stamp(*d.NextAttemptAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.EventID, d.EventType, d.Status, d.Attempts, strings.TrimSpace(last), next)
		}
		tw.Flush()
		if l.HasMore {
			fmt.Fprintf(w, "more: --starting-after %s\n", l.Data[len(l.Data)-1].ID)
		}
	})
}

func (cl *cli) redeliverWebhook(args []string) error {
	c := cl.command("webhook redeliver", "webhook redeliver whd_…", false)
	pos, api, ctx, err := c.call(args, "DELIVERY_ID")
	if err != nil {
		return err
	}
	d, err := api.RedeliverWebhook(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(d, func(w io.Writer) { fmt.Fprintf(w, "%s is %s: attempted again now\n", d.ID, d.Status) })
}

func (cl *cli) webhookKey(args []string) error {
	c := cl.command("webhook key", "webhook key", false)
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	k, err := api.WebhookPublicKey(ctx)
	if err != nil {
		return err
	}
	return c.print(map[string]string{"public_key": k}, func(w io.Writer) {
		fmt.Fprintf(w, "%s\n(verifies every delivery's v1a signature)\n", k)
	})
}
