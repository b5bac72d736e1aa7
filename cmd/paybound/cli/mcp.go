package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
	"github.com/paybound/paybound/internal/mcpserver"
	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// MCP runs `paybound mcp`: the agent's MCP server over stdio (stdin and
// stdout carry MCP's newline-delimited JSON-RPC; stderr its log), whose
// tools call the server at --server through the Go SDK, every request
// signed with the agent's key file (--agent-key, else
// $PAYBOUND_AGENT_KEY). It serves until stdin ends or ctx is done. The
// mandate, confirmation and risk checks stay the server's: this process
// holds no state but the key (and, so that a retried paid fetch sends the
// same payment, the x402 authorizations it signed).
func MCP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("paybound mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "the Paybound server's URL (default $PAYBOUND_URL, else "+defaultURL+")")
	keyFile := fs.String("agent-key", "", "the agent's private key file, which signs every request (default $PAYBOUND_AGENT_KEY)")
	allow := fs.String("x402-allow", "", "hosts pay_x402_resource and call_paid_tool may reach, comma-separated (default: any host at a public address)")
	agentID := fs.String("agent", "", "the agent's ID, agt_…, shown in wallet_summary (default: learned from its mandates)")
	cmdline.UsageFor(fs, stderr, "paybound mcp --server URL [--agent-key agent.key] [--agent agt_…] [--x402-allow host,…]\n\n"+
		"Serves an agent's MCP tools over stdio (for an MCP client's config), calling the server\n"+
		"with requests signed by the agent's key.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cmdline.ErrUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cmdline.ErrUsage
	}
	u := *server
	if u == "" {
		u = getenv("PAYBOUND_URL")
	}
	if u == "" {
		u = defaultURL
	}
	c := &cmd{cl: &cli{ctx: ctx, stdout: stdout, stderr: stderr, getenv: getenv}, url: u}
	base, err := c.serverURL()
	if err != nil {
		return err
	}
	file := *keyFile
	if file == "" {
		file = getenv("PAYBOUND_AGENT_KEY")
	}
	if file == "" {
		return errors.New("paybound mcp needs the agent's private key, which signs every request: set PAYBOUND_AGENT_KEY=agent.key or pass --agent-key (paybound agent keygen makes one; register it with agents create --public-key @agent.key.pub)")
	}
	keyID, priv, err := loadAgentKey(file)
	if err != nil {
		return err
	}
	be := &Remote{API: client.New(base, "", client.WithUserAgent("paybound-mcp"), client.WithAgentKey(keyID, priv)),
		BaseURL: strings.TrimSuffix(base, "/"), AgentID: *agentID, Key: priv, X402: &X402Fetcher{Allow: commaList(*allow)}}
	srv, err := mcpserver.NewServer(mcpserver.AgentSide, mcpserver.Config{
		Backend: func(context.Context, *mcp.RequestExtra) (mcpserver.Backend, error) { return be, nil }})
	if err != nil {
		return err
	}
	return srv.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Remote is the MCP tools' backend over the REST API, through the Go SDK:
// the stdio command's, acting as the client's caller. Idempotency keys are
// sent as the API's Idempotency-Key, prefixed with the operation as the
// in-process backend prefixes them, so a key means the same through both.
type Remote struct {
	API     *client.Client
	BaseURL string // makes confirmation links absolute
	AgentID string // "" until learned from a mandate
	// Key is the agent's private key, which signs its x402 authorizations
	// (pay_x402_resource) as it signs its requests.
	Key  ed25519.PrivateKey
	X402 *X402Fetcher
}

var _ mcpserver.Backend = (*Remote)(nil)

func (r *Remote) keyed(ctx context.Context, op, key string) (context.Context, error) {
	if err := mcpserver.CheckKey(key); err != nil {
		return nil, err
	}
	return client.WithIdempotencyKey(ctx, "mcp."+op+"."+key), nil
}

// Caller is the agent; its ID is --agent or its mandates'.
func (r *Remote) Caller(ctx context.Context) (mcpserver.Identity, error) {
	id := mcpserver.Identity{Role: pb.RoleAgent, ID: r.AgentID}
	if id.ID == "" {
		if l, err := r.API.ListMandates(ctx, client.ListParams{Limit: 1}); err == nil && len(l.Data) > 0 {
			id.ID, id.UserID = l.Data[0].AgentID, l.Data[0].UserID
		}
	}
	return id, nil
}

func (r *Remote) Mandates(ctx context.Context, after string, limit int) ([]mcpserver.Mandate, bool, error) {
	l, err := r.API.ListMandates(ctx, client.ListParams{Limit: limit, StartingAfter: after})
	if err != nil {
		return nil, false, err
	}
	out := make([]mcpserver.Mandate, len(l.Data))
	for i, m := range l.Data {
		out[i] = mcpserver.Mandate{Mandate: m.Mandate, RemainingBudget: m.RemainingBudget, PaymentsCount: m.PaymentsCount}
	}
	return out, l.HasMore, nil
}

// RequestMandate is POST /v1/mandate_requests, the agent's signed request.
func (r *Remote) RequestMandate(ctx context.Context, key string, p mcpserver.MandateRequestParams) (*pb.MandateRequest, error) {
	ctx, err := r.keyed(ctx, "mandate_request", key)
	if err != nil {
		return nil, err
	}
	m := p.Mandate()
	return r.API.RequestMandate(ctx, client.CreateMandateRequestParams{Reason: p.Reason, CreateMandateParams: client.CreateMandateParams{
		Description: m.Description, Currency: m.Currency, MaxAmount: m.MaxAmount, Budget: m.Budget, MerchantIDs: m.MerchantIDs,
		ConfirmAbove: m.ConfirmAbove}})
}

// PayX402 fetches a paid URL from this process (the agent's machine),
// paying with an authorization signed by the agent's key.
func (r *Remote) PayX402(ctx context.Context, key string, req mcpserver.X402Request) (*mcpserver.X402Response, error) {
	caller, sign, err := r.signer("pay_x402_resource", req.MandateID)
	if err != nil {
		return nil, err
	}
	return r.X402.Fetch(ctx, caller, key, sign, req)
}

// CallPaidTool calls a seller's paid tool from this process, paying with
// an authorization signed by the agent's key.
func (r *Remote) CallPaidTool(ctx context.Context, key string, c mcpserver.PaidToolCall) (*mcpserver.PaidToolResult, error) {
	caller, sign, err := r.signer("call_paid_tool", c.MandateID)
	if err != nil {
		return nil, err
	}
	return r.X402.CallTool(ctx, caller, key, sign, c)
}

// signer is the agent's key's thumbprint and its signer of x402
// authorizations under mandate, for tool.
func (r *Remote) signer(tool, mandate string) (string, X402Signer, error) {
	if r.X402 == nil || len(r.Key) != ed25519.PrivateKeySize {
		return "", nil, pb.Errorf(pb.ErrForbidden, "", "%s needs the agent's key (--agent-key)", tool)
	}
	payer := x402.Payer{Key: r.Key, Mandate: mandate}
	return wire.Thumbprint(r.Key.Public().(ed25519.PublicKey)), func(reqs x402.PaymentRequirements, resource string, now time.Time) (*wire.SignedAuthorization, error) {
		return x402.Authorize(payer, reqs, resource, now)
	}, nil
}

// WalletURL is the request's place in the server's wallet.
func (r *Remote) WalletURL(id string) string { return mcpserver.WalletRequestURL(r.BaseURL, id) }

// absolute makes a confirmation's link one the user can open.
func (r *Remote) absolute(p *pb.Payment) *pb.Payment {
	if p != nil && p.Confirmation != nil && strings.HasPrefix(p.Confirmation.URL, "/") {
		c := *p.Confirmation
		c.URL = r.BaseURL + c.URL
		p.Confirmation = &c
	}
	return p
}

func (r *Remote) Pay(ctx context.Context, key string, p mcpserver.PayParams) (*pb.Payment, error) {
	ctx, err := r.keyed(ctx, "pay", key)
	if err != nil {
		return nil, err
	}
	in := client.CreatePaymentParams{Amount: p.Amount, Currency: p.Currency, MerchantID: p.MerchantID,
		Description: p.Description, MandateID: p.MandateID}
	if p.PayeeProvenance != "" || p.AmountProvenance != "" {
		in.Provenance = &client.Provenance{Payee: p.PayeeProvenance, Amount: p.AmountProvenance}
	}
	pay, err := r.API.CreatePayment(ctx, in)
	return r.absolute(pay), err
}

func (r *Remote) Payment(ctx context.Context, id string) (*pb.Payment, error) {
	p, err := r.API.GetPayment(ctx, id)
	return r.absolute(p), err
}

func (r *Remote) Payments(ctx context.Context, after string, limit int) ([]pb.Payment, bool, error) {
	l, err := r.API.ListPayments(ctx, client.ListParams{Limit: limit, StartingAfter: after})
	if err != nil {
		return nil, false, err
	}
	for i := range l.Data {
		r.absolute(&l.Data[i])
	}
	return l.Data, l.HasMore, nil
}

// OpenDispute is the REST API's, where disputes are the payer's: an agent's
// signed request is refused (forbidden). /mcp's in-process backend opens
// one for the agent's user.
func (r *Remote) OpenDispute(ctx context.Context, key, paymentID string, reason pb.DisputeReason, details string) (*pb.Dispute, error) {
	ctx, err := r.keyed(ctx, "dispute", key)
	if err != nil {
		return nil, err
	}
	return r.API.OpenDispute(ctx, paymentID, reason, details)
}

func (r *Remote) Checkout(ctx context.Context, op mcpserver.CheckoutOp) (json.RawMessage, error) {
	if op.Kind != "get" {
		var err error
		if ctx, err = r.keyed(ctx, "checkout."+op.Kind, op.Key); err != nil {
			return nil, err
		}
	}
	return r.API.CheckoutRaw(ctx, op.Kind, op.MerchantID, op.SessionID, op.Payload)
}

func (r *Remote) Balances(ctx context.Context) ([]pb.Balance, error) { return r.API.Balance(ctx) }

func (r *Remote) CreatePaymentLink(ctx context.Context, key string, p mcpserver.LinkParams) (*pb.PayLink, error) {
	ctx, err := r.keyed(ctx, "link", key)
	if err != nil {
		return nil, err
	}
	return r.API.CreatePaymentLink(ctx, client.PaymentLinkParams{Amount: p.Amount, Currency: p.Currency,
		Description: p.Description, ExpiresAt: p.ExpiresAt, MaxUses: p.MaxUses})
}

func (r *Remote) Capture(ctx context.Context, key, id string, amount *int64) (*pb.Payment, error) {
	ctx, err := r.keyed(ctx, "capture", key)
	if err != nil {
		return nil, err
	}
	return r.API.Capture(ctx, id, amount)
}

func (r *Remote) Cancel(ctx context.Context, key, id string) (*pb.Payment, error) {
	ctx, err := r.keyed(ctx, "cancel", key)
	if err != nil {
		return nil, err
	}
	return r.API.Cancel(ctx, id)
}

func (r *Remote) Refund(ctx context.Context, key, id string, amount *int64, reason string) (*pb.Refund, error) {
	ctx, err := r.keyed(ctx, "refund", key)
	if err != nil {
		return nil, err
	}
	return r.API.Refund(ctx, id, amount, reason)
}

func (r *Remote) Disputes(ctx context.Context, status, after string, limit int) ([]pb.Dispute, bool, error) {
	l, err := r.API.ListDisputes(ctx, status, client.ListParams{Limit: limit, StartingAfter: after})
	if err != nil {
		return nil, false, err
	}
	return l.Data, l.HasMore, nil
}

func (r *Remote) Settlement(ctx context.Context, from, to time.Time) (*pb.SettlementReport, error) {
	return r.API.SettlementReport(ctx, from, to)
}
