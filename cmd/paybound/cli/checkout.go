package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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

// listCards is "mandates cards mdt_…".
func (cl *cli) listCards(args []string) error {
	c := cl.command("mandates cards", "mandates cards mdt_…", false)
	pos, api, ctx, err := c.call(args, "MANDATE_ID")
	if err != nil {
		return err
	}
	cards, err := api.ListAgentCards(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(cards, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCARD\tEXPIRES\tSTATE")
		for _, card := range cards {
			fmt.Fprintln(tw, cardLine(card))
		}
		tw.Flush()
	})
}

// revokeCard is "mandates revoke-card mdt_… card_…".
func (cl *cli) revokeCard(args []string) error {
	c := cl.command("mandates revoke-card", "mandates revoke-card mdt_… card_…", true)
	pos, api, ctx, err := c.call(args, "MANDATE_ID", "CARD_ID")
	if err != nil {
		return err
	}
	card, err := api.RevokeAgentCard(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	return c.print(card, func(w io.Writer) { fmt.Fprintln(w, cardLine(*card)) })
}

func cardLine(c client.AgentCardView) string {
	return fmt.Sprintf("%s\t•••• %s\t%s/%s\t%s", c.ID, c.Last4, c.ExpMonthText(), c.ExpYearText(), c.State)
}

// checkout dispatches `paybound checkout create|update|get|cancel|pay|buy`:
// an agent's purchase through ACP (docs/acp.md).
func (cl *cli) checkout(args []string) error {
	return cl.group("checkout", args, map[string]func([]string) error{"create": cl.createSession, "update": cl.updateSession,
		"get": cl.getSession, "cancel": cl.cancelSession, "pay": cl.paySession, "buy": cl.buy})
}

// itemsFlag is a repeated --item prod_…[:QTY].
type itemsFlag []client.CheckoutItem

func (f *itemsFlag) String() string { return "" }

func (f *itemsFlag) Set(v string) error {
	id, qs, hasQ := strings.Cut(v, ":")
	q := 1
	if hasQ {
		n, err := strconv.Atoi(qs)
		if err != nil || n < 1 || n > client.MaxCheckoutUnits {
			return fmt.Errorf("the quantity in %q must be a whole number from 1 to %d", v, client.MaxCheckoutUnits)
		}
		q = n
	}
	if !strings.HasPrefix(id, pb.PrefixProduct) {
		return fmt.Errorf("%q is not a product ID (prod_…[:QTY])", v)
	}
	*f = append(*f, client.CheckoutItem{ProductID: id, Quantity: q})
	return nil
}

// parseShipTo reads --ship-to "Name, line1[, line2], City, ST, ZIP, US".
func parseShipTo(v string) (*pb.FulfillmentDetails, error) {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
		if parts[i] == "" || len(parts[i]) > pb.MaxBuyerField {
			return nil, fmt.Errorf("--ship-to %q: part %d is empty or longer than %d bytes", v, i+1, pb.MaxBuyerField)
		}
	}
	var a pb.Address
	switch len(parts) {
	case 6:
		a = pb.Address{Name: parts[0], LineOne: parts[1], City: parts[2], State: parts[3], PostalCode: parts[4], Country: parts[5]}
	case 7:
		a = pb.Address{Name: parts[0], LineOne: parts[1], LineTwo: parts[2], City: parts[3], State: parts[4], PostalCode: parts[5], Country: parts[6]}
	default:
		return nil, fmt.Errorf(`--ship-to must be "Name, line1[, line2], City, State, ZIP, Country" (such as "Ada Lovelace, 1 Main St, Springfield, IL, 62701, US"), got %d parts`, len(parts))
	}
	return &pb.FulfillmentDetails{Name: a.Name, Address: &a}, nil
}

// sessionFlags are the flags that shape a session: --item and --ship-to.
type sessionFlags struct {
	items  itemsFlag
	shipTo string
}

func (f *sessionFlags) add(c *cmd, itemsRequired bool) {
	req := ""
	if itemsRequired {
		req = " (at least one)"
	}
	c.fs.Var(&f.items, "item", "a product and its quantity, prod_…[:QTY]; repeat it for more products"+req)
	c.fs.StringVar(&f.shipTo, "ship-to", "", `where shipped products go: "Name, line1[, line2], City, State, ZIP, Country"`)
}

func (f *sessionFlags) details() (*pb.FulfillmentDetails, error) {
	if f.shipTo == "" {
		return nil, nil
	}
	return parseShipTo(f.shipTo)
}

// sessionText prints a session for people: its status and total, its
// lines, where it ships, its messages, its order, and what to do next.
func sessionText(w io.Writer, s *client.CheckoutSession, merchant string) {
	cur := s.ISOCurrency()
	fmt.Fprintf(w, "%s %s: %s at %s\n", s.ID, s.Status, money(s.Total(), cur), merchant)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range s.LineItems {
		fmt.Fprintf(tw, "  %d ×\t%s\t%s\t%s\n", l.Quantity, l.ProductID, l.Name, money(l.Quantity*l.UnitAmount, cur))
	}
	tw.Flush()
	if d := s.FulfillmentDetails; d != nil && d.Address != nil {
		a := d.Address
		fmt.Fprintf(w, "  ship to %s, %s, %s, %s %s, %s\n", a.Name, a.LineOne, a.City, a.State, a.PostalCode, a.Country)
	}
	for _, m := range s.Messages {
		line := "  " + m.Type
		if m.Code != "" {
			line += " " + m.Code
		}
		if m.Param != "" {
			line += " " + m.Param
		}
		fmt.Fprintf(w, "%s: %s\n", line, m.Content)
	}
	if s.Order != nil {
		fmt.Fprintf(w, "  order %s (%s), payment %s\n", s.Order.ID, s.Order.Status, s.PaymentID())
	}
	switch s.Status {
	case pb.CheckoutReady:
		fmt.Fprintf(w, "pay: paybound checkout pay %s --merchant %s --card NUMBER\n", s.ID, merchant)
	case pb.CheckoutNotReady:
		fmt.Fprintf(w, "fix: paybound checkout update %s --merchant %s --ship-to \"Name, line1, City, State, ZIP, Country\"\n", s.ID, merchant)
	case pb.CheckoutPendingApproval:
		fmt.Fprintf(w, "waiting for the user's approval of %s: %s\n", s.PaymentID(), s.ContinueURL)
	}
}

func (c *cmd) printSession(s *client.CheckoutSession, merchant string) error {
	if c.json {
		var buf bytes.Buffer
		if err := json.Indent(&buf, s.Raw, "", "  "); err != nil {
			return fmt.Errorf("couldn't print the session: %w", err)
		}
		fmt.Fprintf(c.cl.stdout, "%s\n", buf.Bytes())
		return nil
	}
	sessionText(c.cl.stdout, s, merchant)
	return nil
}

// currencyOf is --currency, else the currency of the first item's product.
func currencyOf(ctx context.Context, api *client.Client, flagged string, items itemsFlag) (string, error) {
	if flagged != "" {
		return strings.ToUpper(flagged), nil
	}
	p, err := api.GetProduct(ctx, items[0].ProductID)
	if err != nil {
		return "", err
	}
	return p.Currency, nil
}

func (cl *cli) createSession(args []string) error {
	c := cl.command("checkout create", `checkout create --merchant mch_… --item prod_…[:QTY] … [--ship-to "Name, line1, City, ST, ZIP, US"]`, true)
	var n newSession
	n.add(c)
	if _, err := c.parse(args); err != nil {
		return err
	}
	if err := n.check(); err != nil {
		return err
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	s, err := n.create(ctx, api)
	if err != nil {
		return err
	}
	return c.printSession(s, n.merchant)
}

// newSession is the flags of a session to create: create's and buy's.
type newSession struct {
	sessionFlags
	merchant, currency string
	details            *pb.FulfillmentDetails
}

func (n *newSession) add(c *cmd) {
	c.fs.StringVar(&n.merchant, "merchant", "", "the merchant, mch_… (required)")
	c.fs.StringVar(&n.currency, "currency", "", "the products' currency (default: the first product's)")
	n.sessionFlags.add(c, true)
}

// check checks the flags before anything is sent.
func (n *newSession) check() error {
	if n.merchant == "" || len(n.items) == 0 {
		return errors.New("--merchant and at least one --item are required")
	}
	var err error
	n.details, err = n.sessionFlags.details()
	return err
}

// create opens the session, in --currency or the first product's.
func (n *newSession) create(ctx context.Context, api *client.Client) (*client.CheckoutSession, error) {
	cur, err := currencyOf(ctx, api, n.currency, n.items)
	if err != nil {
		return nil, err
	}
	return api.CreateCheckoutSession(ctx, n.merchant, client.CreateCheckoutSessionParams{Currency: cur, Items: n.items, FulfillmentDetails: n.details})
}

func (cl *cli) updateSession(args []string) error {
	c := cl.command("checkout update", `checkout update cs_… --merchant mch_… [--item prod_…[:QTY] …] [--ship-to "…"]`, true)
	merchant := c.fs.String("merchant", "", "the session's merchant, mch_… (required)")
	var f sessionFlags
	f.add(c, false)
	pos, err := c.parse(args, "cs_…")
	if err != nil {
		return err
	}
	if *merchant == "" {
		return errors.New("--merchant is required")
	}
	if len(f.items) == 0 && f.shipTo == "" {
		return errors.New("nothing to change: give --item (replacing the session's items) or --ship-to")
	}
	details, err := f.details()
	if err != nil {
		return err
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	s, err := api.UpdateCheckoutSession(ctx, *merchant, pos[0], client.UpdateCheckoutSessionParams{Items: f.items, FulfillmentDetails: details})
	if err != nil {
		return err
	}
	return c.printSession(s, *merchant)
}

func (cl *cli) getSession(args []string) error {
	return cl.onSession(args, "get", false, (*client.Client).GetCheckoutSession)
}

func (cl *cli) cancelSession(args []string) error {
	return cl.onSession(args, "cancel", true, (*client.Client).CancelCheckoutSession)
}

// onSession is `checkout NAME cs_… --merchant mch_…`: op on one session.
func (cl *cli) onSession(args []string, name string, post bool,
	op func(*client.Client, context.Context, string, string) (*client.CheckoutSession, error)) error {
	c := cl.command("checkout "+name, "checkout "+name+" cs_… --merchant mch_…", post)
	merchant := c.fs.String("merchant", "", "the session's merchant, mch_… (required)")
	pos, err := c.parse(args, "cs_…")
	if err != nil {
		return err
	}
	if *merchant == "" {
		return errors.New("--merchant is required")
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	s, err := op(api, ctx, *merchant, pos[0])
	if err != nil {
		return err
	}
	return c.printSession(s, *merchant)
}

// cardFlags are how pay and buy take the agent card and the agent's key.
type cardFlags struct {
	card, exp, agentKey string
}

func (f *cardFlags) add(c *cmd) {
	c.fs.StringVar(&f.card, "card", "", "the agent card's number, from paybound mandates card (required)")
	c.fs.StringVar(&f.exp, "exp", "", "the card's expiry, MM/YY or MM/YYYY, checked against the card")
	c.fs.StringVar(&f.agentKey, "agent-key", "", "the agent's private key file, which signs delegate_payment (default $PAYBOUND_AGENT_KEY)")
}

// payClient checks the card flags and returns a client that can sign
// delegate_payment with the agent's key file (--agent-key or
// $PAYBOUND_AGENT_KEY). With the agent's bearer key too (--key), requests authenticate with it and delegate_payment
// carries ACP's Signature and Timestamp; without one, every request is an
// RFC 9421 signed request, which the server takes for ACP's pair (the two
// share the header's name). Nothing is sent before these checks.
func (c *cmd) payClient(f *cardFlags) (*client.Client, context.Context, error) {
	if f.card == "" {
		return nil, nil, errors.New("--card is required: the agent card's number (the user issues one with paybound mandates card mdt_…)")
	}
	if f.exp != "" {
		m, y, err := parseExp(f.exp)
		if err != nil {
			return nil, nil, err
		}
		f.exp = m + "/" + y
	}
	file := f.agentKey
	if file == "" {
		file = c.cl.getenv("PAYBOUND_AGENT_KEY")
	}
	if file == "" {
		return nil, nil, errors.New("paying needs the agent's private key, which signs delegate_payment: set PAYBOUND_AGENT_KEY=agent.key or pass --agent-key agent.key (paybound agent keygen makes one; register it with agents create --public-key @agent.key.pub)")
	}
	keyID, priv, err := loadAgentKey(file)
	if err != nil {
		return nil, nil, err
	}
	u, err := c.serverURL()
	if err != nil {
		return nil, nil, err
	}
	// As for every command, the key file wins over $PAYBOUND_KEY; only
	// --key adds a bearer key.
	key := c.key
	opts := []client.Option{client.WithUserAgent("paybound-cli"), client.WithDelegationKey(priv)}
	if key == "" {
		opts = append(opts, client.WithAgentKey(keyID, priv))
	}
	ctx := c.cl.ctx
	if c.idem != "" {
		ctx = client.WithIdempotencyKey(ctx, c.idem)
	}
	return client.New(u, key, opts...), ctx, nil
}

// parseExp reads MM/YY or MM/YYYY as ("07", "2029").
func parseExp(v string) (month, year string, err error) {
	m, y, ok := strings.Cut(v, "/")
	mi, merr := strconv.Atoi(m)
	yi, yerr := strconv.Atoi(y)
	if !ok || merr != nil || yerr != nil || mi < 1 || mi > 12 || len(m) > 2 || (len(y) != 2 && len(y) != 4) {
		return "", "", fmt.Errorf("--exp %q must be MM/YY or MM/YYYY, such as 07/29", v)
	}
	if len(y) == 2 {
		yi += 2000
	}
	return fmt.Sprintf("%02d", mi), strconv.Itoa(yi), nil
}

// paySession is `checkout pay cs_… --merchant … --card …`.
func (cl *cli) paySession(args []string) error {
	c := cl.command("checkout pay", "checkout pay cs_… --merchant mch_… --card NUMBER [--exp MM/YY] [--agent-key FILE]", false)
	merchant := c.fs.String("merchant", "", "the session's merchant, mch_… (required)")
	var f cardFlags
	f.add(c)
	pos, err := c.parse(args, "cs_…")
	if err != nil {
		return err
	}
	if *merchant == "" {
		return errors.New("--merchant is required")
	}
	api, ctx, err := c.payClient(&f)
	if err != nil {
		return err
	}
	return c.pay(ctx, api, *merchant, pos[0], &f, false)
}

// buy is `checkout buy`: create the session, then pay it.
func (cl *cli) buy(args []string) error {
	c := cl.command("checkout buy", `checkout buy --merchant mch_… --item prod_…[:QTY] … --card NUMBER [--exp MM/YY] [--ship-to "…"] [--agent-key FILE]`, true)
	var n newSession
	n.add(c)
	var f cardFlags
	f.add(c)
	if _, err := c.parse(args); err != nil {
		return err
	}
	if err := n.check(); err != nil {
		return err
	}
	api, ctx, err := c.payClient(&f)
	if err != nil {
		return err
	}
	s, err := n.create(ctx, api)
	if err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintf(c.cl.stdout, "%s created: %s\n", s.ID, money(s.Total(), s.ISOCurrency()))
	}
	// With --idempotency-key, a repeated buy finds the same session: if it
	// is paid already, that is the outcome.
	err = c.pay(client.WithIdempotencyKey(ctx, ""), api, n.merchant, s.ID, &f, c.idem != "")
	switch pb.ErrorCode(err) {
	case "", pb.ErrCheckoutState, pb.ErrInternal, pb.ErrUnavailable, pb.ErrLedgerStopped:
		// Paid, or not open, or an outcome the command cannot know.
	default:
		if c.json {
			break
		}
		// A refusal: nothing was charged and the session is still open;
		// say how to go on with it rather than open another.
		fmt.Fprintf(c.cl.stdout, "%s is still open: paybound checkout pay %s --merchant %s --card NUMBER, or paybound checkout cancel %s --merchant %s\n",
			s.ID, s.ID, n.merchant, s.ID, n.merchant)
	}
	return err
}

// pay delegates the card for the session's total and completes the
// session with the token. Each step has its own fresh Idempotency-Key;
// the server completes a session once, so repeating pay never charges
// twice. A completed session is an error, unless resumed (a repeated buy),
// when it is the result.
func (c *cmd) pay(ctx context.Context, api *client.Client, merchant, id string, f *cardFlags, resumed bool) error {
	s, err := api.GetCheckoutSession(ctx, merchant, id)
	if err != nil {
		return err
	}
	switch {
	case s.Status == pb.CheckoutCompleted && resumed:
		return c.printPaid(ctx, api, s, merchant)
	case s.Status == pb.CheckoutCompleted:
		return pb.Errorf(pb.ErrCheckoutState, "id", "checkout session %s is completed already (order %s, payment %s); nothing was charged", s.ID, orderID(s), s.PaymentID())
	case s.Status != pb.CheckoutReady:
		var why []string
		for _, m := range s.Messages {
			if m.Type == "error" {
				why = append(why, strings.TrimSpace(m.Param+" "+m.Content))
			}
		}
		msg := fmt.Sprintf("checkout session %s is %s, so it cannot be paid; nothing was charged", s.ID, s.Status)
		if s.Status == pb.CheckoutNotReady {
			msg = fmt.Sprintf("checkout session %s is not ready for payment: %s; nothing was charged (fix it with paybound checkout update %s --merchant %s)",
				s.ID, strings.Join(why, "; "), s.ID, merchant)
		}
		if s.Status == pb.CheckoutPendingApproval {
			msg = fmt.Sprintf("checkout session %s is paid by %s once the user approves it (%s); nothing more was charged", s.ID, s.PaymentID(), s.ContinueURL)
		}
		return pb.Errorf(pb.ErrCheckoutState, "id", "%s", msg)
	}
	m, y, _ := strings.Cut(f.exp, "/")
	tok, err := api.DelegatePayment(ctx, client.DelegatePaymentParams{Number: f.card, ExpMonth: m, ExpYear: y,
		CheckoutSessionID: s.ID, MerchantID: merchant, MaxAmount: s.Total(), Currency: s.Currency})
	if err != nil {
		return err
	}
	done, err := api.CompleteCheckoutSession(ctx, merchant, s.ID, tok.ID)
	if err != nil {
		return err
	}
	if done.Status == pb.CheckoutReady && done.DeclinedPaymentID() != "" {
		msg := "the payment was declined"
		for _, m := range done.Messages {
			if m.Type == "error" {
				msg = m.Content
			}
		}
		code := pb.Code("payment_declined")
		if p, err := api.GetPayment(ctx, done.DeclinedPaymentID()); err == nil && p.DeclineCode != "" {
			code = p.DeclineCode
		}
		return &pb.Error{Code: code, Message: msg, PaymentID: done.DeclinedPaymentID()}
	}
	return c.printPaid(ctx, api, done, merchant)
}

func orderID(s *client.CheckoutSession) string {
	if s.Order == nil {
		return "-"
	}
	return s.Order.ID
}

// printPaid prints a paid (or approval-pending) session: its status, order,
// payment and amount, the payment read from /v1 for its status.
func (c *cmd) printPaid(ctx context.Context, api *client.Client, s *client.CheckoutSession, merchant string) error {
	if c.json {
		return c.printSession(s, merchant)
	}
	w := c.cl.stdout
	if s.Status == pb.CheckoutPendingApproval {
		fmt.Fprintf(w, "%s pending_approval: payment %s of %s waits for the user's approval: %s\n", s.ID, s.PaymentID(), money(s.Total(), s.ISOCurrency()), s.ContinueURL)
		return nil
	}
	fmt.Fprintf(w, "%s %s: order %s\n", s.ID, s.Status, orderID(s))
	if id := s.PaymentID(); id != "" {
		p, err := api.GetPayment(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, paymentLine(p))
	}
	return nil
}
