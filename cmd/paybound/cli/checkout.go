package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

func (cl *cli) products(args []string) error {
	return cl.group("products", args, map[string]func([]string) error{"create": cl.createProduct, "list": cl.listProducts,
		"archive": cl.archiveProduct})
}

func productLine(p *pb.Product) string {
	state := ""
	if !p.Active {
		state = "  (archived)"
	}
	return fmt.Sprintf("%s  %s  %s  %s  %s%s", p.ID, money(p.Price, p.Currency), p.Fulfillment, p.SKU, p.Name, state)
}

func (cl *cli) createProduct(args []string) error {
	c := cl.command("products create", "products create --name N --price 12.50 --currency USD --fulfillment digital|shipping [--sku S]", true)
	name := c.fs.String("name", "", "the product's name (required)")
	price := c.fs.String("price", "", "unit price, a decimal in the currency (required)")
	currency := c.fs.String("currency", "", "ISO 4217 code such as USD (required)")
	fulfillment := c.fs.String("fulfillment", "", "digital or shipping (required)")
	sku := c.fs.String("sku", "", "the merchant's stock keeping unit")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	if *name == "" || *price == "" || *currency == "" || *fulfillment == "" {
		return errors.New("--name, --price, --currency and --fulfillment are required")
	}
	amount, err := pb.ParseAmount(*price, *currency)
	if err != nil {
		return err
	}
	f := pb.Fulfillment(*fulfillment)
	p := client.ProductParams{Name: name, Price: &amount, Currency: *currency, Fulfillment: &f}
	if *sku != "" {
		p.SKU = sku
	}
	out, err := api.CreateProduct(ctx, p)
	if err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) { fmt.Fprintln(w, productLine(out)) })
}

func (cl *cli) listProducts(args []string) error {
	c := cl.command("products list", "products list [--merchant mch_…] [--archived] [--limit N] [--starting-after prod_…]", false)
	merchant := c.fs.String("merchant", "", "whose catalog (required with a user or agent key)")
	archived := c.fs.Bool("archived", false, "include archived products (the merchant's key)")
	limit := c.fs.Int("limit", 0, "page size, 1-100")
	after := c.fs.String("starting-after", "", "the last product ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	l, err := api.ListProducts(ctx, *merchant, *archived, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(l, func(w io.Writer) {
		for i := range l.Data {
			fmt.Fprintln(w, productLine(&l.Data[i]))
		}
		if l.HasMore {
			fmt.Fprintln(w, "(more: --starting-after", l.Data[len(l.Data)-1].ID+")")
		}
	})
}

func (cl *cli) archiveProduct(args []string) error {
	c := cl.command("products archive", "products archive prod_…", true)
	pos, api, ctx, err := c.call(args, "PRODUCT_ID")
	if err != nil {
		return err
	}
	out, err := api.ArchiveProduct(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) { fmt.Fprintln(w, productLine(out)) })
}

// issueCard is "mandates card mdt_…".
func (cl *cli) issueCard(args []string) error {
	c := cl.command("mandates card", "mandates card mdt_…", true)
	pos, api, ctx, err := c.call(args, "MANDATE_ID")
	if err != nil {
		return err
	}
	card, err := api.IssueAgentCard(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(card, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "id\t%s\nnumber\t%s\nexpires\t%s/%s\nmandate\t%s\nagent\t%s\n", card.ID, card.Number, card.ExpMonth, card.ExpYear, card.MandateID, card.AgentID)
		tw.Flush()
		fmt.Fprintln(w, "  (the number is shown once: give it to the agent now; it pays only through ACP's delegate_payment, under this mandate)")
	})
}
