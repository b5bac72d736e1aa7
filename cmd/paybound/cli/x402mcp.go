package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/mcpserver"
	"github.com/paybound/paybound/internal/webhooks"
	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// X402Fetcher fetches paid URLs for the MCP tool pay_x402_resource, through
// x402.Transport: the stdio command's (signing with the agent's key) and
// the server's /mcp (signing delegated authorizations for the agent it
// authenticated). Safe for concurrent use.
//
// Which hosts it fetches (server-side request forgery: a model can be told
// to fetch anything): with Allow, only those hosts (names, addresses or
// host:port), wherever they resolve; without, none when Closed (the
// server's default: the operator allows hosts with --mcp-x402-allow), else
// any host at a public address (the stdio command's default: it runs on
// the agent's machine), refused at connection time so that a name cannot
// resolve to a private address. Redirects are not followed: a 3xx is
// answered as it came.
type X402Fetcher struct {
	Allow  []string
	Closed bool
	// Base sends the requests (nil: a transport that enforces the above,
	// with a 30 s timeout).
	Base http.RoundTripper
	Now  func() time.Time

	once  sync.Once
	base  http.RoundTripper
	mu    sync.Mutex
	calls map[string]*x402Call // caller and idempotency key → the purchase
}

// x402Call is one purchase under an idempotency key: its arguments' hash,
// and the authorization signed for it, which a retry sends again so that
// the seller and the facilitator answer the first payment.
type x402Call struct {
	hash [32]byte
	reqs x402.PaymentRequirements
	res  string
	sa   *wire.SignedAuthorization
	at   time.Time
}

// maxX402Calls bounds the purchases a fetcher remembers; an older one is
// forgotten (a retry of it then signs anew under the same payment
// identifier, which the facilitator refuses as a conflict: it still never
// pays twice).
const maxX402Calls = 4096

// maxX402Read bounds how much of an answer is read.
const maxX402Read = 1 << 20

// X402Signer signs an authorization for reqs and resource at now.
type X402Signer func(reqs x402.PaymentRequirements, resource string, now time.Time) (*wire.SignedAuthorization, error)

func (f *X402Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *X402Fetcher) transport() http.RoundTripper {
	f.once.Do(func() {
		f.base = f.Base
		if f.base == nil {
			f.base = guardedTransport(len(f.Allow) > 0)
		}
	})
	return f.base
}

// guardedTransport connects anywhere when hostsListed (the URL's host was
// checked against the list), else only to public addresses.
func guardedTransport(hostsListed bool) http.RoundTripper {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !hostsListed {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip, err := netip.ParseAddr(host); err != nil || !webhooks.PublicAddr(ip) {
				return fmt.Errorf("refused to connect to %s: not a public address", host)
			}
			return nil
		}
	}
	return &http.Transport{Proxy: nil, DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
}

// Fetch fetches r for caller (an agent's ID) under key, signing with sign.
func (f *X402Fetcher) Fetch(ctx context.Context, caller, key string, sign X402Signer, r mcpserver.X402Request) (*mcpserver.X402Response, error) {
	t, ctx, err := f.begin(ctx, caller, key, sign, r.URL, r, r.MaxAmount, r.Currency, r.MandateID)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "url", "%v", err)
	}
	if r.Body != "" {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("User-Agent", "paybound-mcp")
	res, err := t.RoundTrip(req)
	if err != nil {
		return nil, fetchFailed(err)
	}
	defer res.Body.Close()
	return answerX402(res, r)
}

// begin checks rawURL's host, finds the purchase under caller's key
// (refusing other arguments), and returns the Transport that pays it with
// sign, within max minor units of currency under mandate, and the context
// that names its payment identifier.
func (f *X402Fetcher) begin(ctx context.Context, caller, key string, sign X402Signer, rawURL string, args any, max int64, currency, mandate string) (*x402.Transport, context.Context, error) {
	if len(f.Allow) > 0 && !mcpserver.X402HostAllowed(f.Allow, rawURL) {
		return nil, nil, pb.Errorf(pb.ErrForbidden, "url", "this host is not one the operator allows paid fetches from (%s)", strings.Join(f.Allow, ", "))
	}
	if len(f.Allow) == 0 && f.Closed {
		return nil, nil, pb.Errorf(pb.ErrForbidden, "url", "this server fetches no paid URLs for agents: its operator has allowed no host (--mcp-x402-allow)")
	}
	atomic, err := wire.AtomicUnits(max, currency)
	if err != nil {
		return nil, nil, pb.Errorf(pb.ErrParameterInvalid, "max_amount", "%v", err)
	}
	h, _ := json.Marshal(args)
	call, err := f.call(caller+"\n"+key, sha256.Sum256(h))
	if err != nil {
		return nil, nil, err
	}
	id := sha256.Sum256([]byte("paybound mcp x402\n" + caller + "\n" + key))
	t := &x402.Transport{Base: f.transport(), Asset: currency, MaxPerRequest: atomic, MaxPerHour: atomic, Now: f.Now,
		Payer: x402.Payer{Mandate: mandate},
		Authorize: func(reqs x402.PaymentRequirements, resource string, now time.Time) (*wire.SignedAuthorization, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if call.sa != nil && call.reqs.Scheme == reqs.Scheme && call.reqs.Network == reqs.Network && call.reqs.Amount == reqs.Amount &&
				call.reqs.PayTo == reqs.PayTo && call.reqs.Asset == reqs.Asset && call.res == resource {
				if _, before, _ := call.sa.Authorization.Window(); now.Before(before) {
					return call.sa, nil
				}
			}
			sa, err := sign(reqs, resource, now)
			if err == nil {
				call.reqs, call.res, call.sa = reqs, resource, sa
			}
			return sa, err
		}}
	return t, x402.WithPaymentID(ctx, "mcp_"+hex.EncodeToString(id[:20])), nil
}

// fetchFailed is the tool's error for a request that got no answer: a
// coded error as it is, else unavailable without the URL.
func fetchFailed(err error) error {
	if e := (*pb.Error)(nil); errors.As(err, &e) {
		return e
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	return pb.Errorf(pb.ErrUnavailable, "url", "couldn't reach the seller: %v; nothing was paid unless a receipt says so: retry with the same idempotency_key", err)
}

// CallTool calls a paid tool of the MCP server at r.ServerURL (streamable
// HTTP) for caller under key, paying its x402 refusal (x402 over MCP) with
// sign, as Fetch pays a URL.
func (f *X402Fetcher) CallTool(ctx context.Context, caller, key string, sign X402Signer, r mcpserver.PaidToolCall) (*mcpserver.PaidToolResult, error) {
	// The client session gets a context of its own, canceled with ctx but
	// without its values: the SDK reads its protocol version from a
	// context, and ctx may be an MCP request's (the /mcp call's) of
	// another version.
	own, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	t, ctx, err := f.begin(own, caller, key, sign, r.ServerURL, r, r.MaxAmount, r.Currency, r.MandateID)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: f.transport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "paybound-mcp", Version: mcpserver.Version}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: r.ServerURL, HTTPClient: hc, DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	if err != nil {
		return nil, fetchFailed(err)
	}
	defer cs.Close()
	var args any = map[string]any{}
	if len(r.Arguments) > 0 {
		args = r.Arguments
	}
	res, err := t.CallTool(ctx, cs, &mcp.CallToolParams{Name: r.Tool, Arguments: args})
	if err != nil {
		return nil, fetchFailed(err)
	}
	if pr, asks := x402.ToolPaymentRequired(res); asks {
		var sr *x402.SettlementResponse
		if m, _ := res.StructuredContent.(map[string]any); m != nil {
			if b, err := json.Marshal(m[x402.MetaPaymentResponse]); err == nil && string(b) != "null" {
				sr = new(x402.SettlementResponse)
				if json.Unmarshal(b, sr) != nil {
					sr = nil
				}
			}
		}
		return nil, unpaid(pr, sr, r.MaxAmount, r.Currency, r.MandateID)
	}
	out := &mcpserver.PaidToolResult{IsError: res.IsError, StructuredContent: res.StructuredContent}
	var texts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, tc.Text)
		}
	}
	out.Text = strings.ToValidUTF8(strings.Join(texts, "\n"), "")
	if len(out.Text) > mcpserver.MaxX402Body {
		out.Text, out.Truncated = strings.ToValidUTF8(out.Text[:mcpserver.MaxX402Body], ""), true
	}
	if b, _ := json.Marshal(out.StructuredContent); len(b) > mcpserver.MaxX402Body {
		out.StructuredContent, out.Truncated = nil, true
	}
	if sr, ok := x402.ToolSettlement(res); ok && sr.Success {
		atomic, _ := wire.ParseAtomic(sr.Amount)
		minor, _, _ := wire.MinorUnits(atomic, r.Currency)
		out.Paid, out.Receipt = true, mcpserver.Receipt(sr.Transaction, sr.Network, sr.Payer, sr.Amount, minor, r.Currency)
	}
	return out, nil
}

// call returns the purchase under k, refusing one made with other
// arguments.
func (f *X402Fetcher) call(k string, hash [32]byte) (*x402Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[k]; ok {
		if c.hash != hash {
			return nil, pb.Errorf(pb.ErrIdempotencyConflict, "idempotency_key", "this idempotency_key was used for another request")
		}
		return c, nil
	}
	if f.calls == nil {
		f.calls = map[string]*x402Call{}
	}
	if len(f.calls) >= maxX402Calls {
		var oldest string
		var at time.Time
		for k, c := range f.calls {
			if oldest == "" || c.at.Before(at) {
				oldest, at = k, c.at
			}
		}
		delete(f.calls, oldest)
	}
	c := &x402Call{hash: hash, at: f.now()}
	f.calls[k] = c
	return c, nil
}

// answerX402 is the tool's answer to res: a refusal for a 402 that was not
// paid (why, from PAYMENT-REQUIRED and PAYMENT-RESPONSE), else the answer,
// bounded, with the receipt of a settled payment.
func answerX402(res *http.Response, r mcpserver.X402Request) (*mcpserver.X402Response, error) {
	var sr x402.SettlementResponse
	hasReceipt := wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentResponse), &sr) == nil
	if res.StatusCode == http.StatusPaymentRequired || (hasReceipt && !sr.Success) {
		var pr *x402.PaymentRequired
		if p := new(x402.PaymentRequired); wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentRequired), p) == nil {
			pr = p
		}
		var failed *x402.SettlementResponse
		if hasReceipt {
			failed = &sr
		}
		return nil, unpaid(pr, failed, r.MaxAmount, r.Currency, r.MandateID)
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxX402Read))
	if err != nil && len(raw) == 0 {
		return nil, pb.Errorf(pb.ErrUnavailable, "url", "couldn't read the resource's answer: %v", err)
	}
	out := &mcpserver.X402Response{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), BodyEncoding: "text"}
	if len(raw) > mcpserver.MaxX402Body {
		raw, out.Truncated = raw[:mcpserver.MaxX402Body], true
	}
	if utf8.Valid(raw) || out.Truncated && utf8.Valid(raw[:max(0, len(raw)-utf8.UTFMax)]) {
		out.Body = strings.ToValidUTF8(string(raw), "")
	} else {
		out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(raw), "base64"
	}
	if hasReceipt && sr.Success {
		atomic, _ := wire.ParseAtomic(sr.Amount)
		minor, _, _ := wire.MinorUnits(atomic, r.Currency)
		out.Paid, out.Receipt = true, mcpserver.Receipt(sr.Transaction, sr.Network, sr.Payer, sr.Amount, minor, r.Currency)
	}
	return out, nil
}

// unpaid says why a payment was asked for and not made: the failed
// settlement sr when there is one, else what pr (nil: unreadable) asks.
func unpaid(pr *x402.PaymentRequired, sr *x402.SettlementResponse, maxAmount int64, currency, mandate string) error {
	if sr != nil && !sr.Success {
		reason := sr.ErrorReason
		if code, ok := strings.CutPrefix(reason, wire.ReasonPaymentDeclined+":"); ok && code != "" {
			return &pb.Error{Code: pb.Code(code), Message: "the server declined the payment under mandate " + mandate + " (" + code + "); nothing was paid", PaymentID: sr.Transaction}
		}
		switch reason {
		case wire.ReasonInsufficientFunds:
			return &pb.Error{Code: pb.DeclineInsufficientFunds, Message: "the wallet holds too little for this price; nothing was paid", PaymentID: sr.Transaction}
		case wire.ReasonRequiresConfirmation:
			return pb.Errorf(pb.ErrX402ConfirmationRequired, "", "under mandate %s this price needs the user's confirmation, which an x402 payment cannot wait for; nothing was paid", mandate)
		case wire.ReasonSettlementPending, wire.ReasonResponseMalformed, wire.ReasonUnexpectedSettle, wire.ReasonUnexpectedVerify:
			return pb.Errorf(pb.ErrUnavailable, "", "the payment's outcome is not known yet (%s): retry with the same idempotency_key, which never pays twice", reason)
		}
		return pb.Errorf(pb.ErrX402PaymentFailed, "", "the seller's facilitator refused the payment: %.300s; nothing was paid", reason)
	}
	if pr == nil {
		return pb.Errorf(pb.ErrX402NotPayable, "url", "the seller asked for a payment without a readable PaymentRequired; nothing was paid")
	}
	if pr.Error != "" && !strings.Contains(pr.Error, "header is required") && pr.Error != "Payment required" {
		return pb.Errorf(pb.ErrX402PaymentFailed, "", "the seller refused the payment: %.300s; nothing was paid", pr.Error)
	}
	limit, _ := wire.AtomicUnits(maxAmount, currency)
	var asks []string
	for _, a := range pr.Accepts {
		atomic, err := wire.ParseAtomic(a.Amount)
		if err != nil {
			continue
		}
		if a.Asset == currency && wire.ValidNetwork(a.Network) && (a.Scheme == wire.SchemeExact || a.Scheme == wire.SchemeUpto) && atomic > limit {
			if minor, _, err := wire.MinorUnits(atomic, a.Asset); err == nil {
				return pb.Errorf(pb.ErrX402PriceAboveMax, "max_amount", "the seller asks %s, above your max_amount of %s; nothing was paid: ask the user before paying more",
					mcpserver.X402Price(minor, a.Asset), mcpserver.X402Price(maxAmount, currency))
			}
		}
		asks = append(asks, fmt.Sprintf("%.20s %.40s of %.20s on %.60s", a.Scheme, a.Amount, a.Asset, a.Network))
	}
	if len(asks) > 6 {
		asks = asks[:6]
	}
	return pb.Errorf(pb.ErrX402NotPayable, "url", "the seller asks a payment Paybound cannot make in %s (%s); nothing was paid", currency, strings.Join(asks, "; "))
}

// DelegatedX402 is /mcp's pay_x402_resource (mcpserver.InProcess.X402):
// f fetches for the agent /mcp authenticated, signing delegated
// authorizations (from "delegated:<agent ID>") with the server's
// delegation key, which only this deployment's facilitator accepts; so
// it pays only sellers that settle on network.
func DelegatedX402(f *X402Fetcher, key ed25519.PrivateKey, network string) func(context.Context, pb.Principal, string, mcpserver.X402Request) (*mcpserver.X402Response, error) {
	return func(ctx context.Context, agent pb.Principal, idemKey string, r mcpserver.X402Request) (*mcpserver.X402Response, error) {
		return f.Fetch(ctx, agent.ID, idemKey, delegatedSigner(key, network, agent.ID, r.MandateID), r)
	}
}

// DelegatedX402Tool is /mcp's call_paid_tool (mcpserver.InProcess.X402Tool),
// signing as DelegatedX402 does.
func DelegatedX402Tool(f *X402Fetcher, key ed25519.PrivateKey, network string) func(context.Context, pb.Principal, string, mcpserver.PaidToolCall) (*mcpserver.PaidToolResult, error) {
	return func(ctx context.Context, agent pb.Principal, idemKey string, c mcpserver.PaidToolCall) (*mcpserver.PaidToolResult, error) {
		return f.CallTool(ctx, agent.ID, idemKey, delegatedSigner(key, network, agent.ID, c.MandateID), c)
	}
}

// delegatedSigner signs agent's delegated authorizations under mandate
// with key, on network only.
func delegatedSigner(key ed25519.PrivateKey, network, agent, mandate string) X402Signer {
	return func(reqs x402.PaymentRequirements, resource string, now time.Time) (*wire.SignedAuthorization, error) {
		if reqs.Network != network {
			return nil, pb.Errorf(pb.ErrX402NotPayable, "url", "the seller settles on %s; this server pays on %s only", reqs.Network, network)
		}
		a, err := x402.Authorize(x402.Payer{Key: key, Mandate: mandate}, reqs, resource, now)
		if err != nil {
			return nil, err
		}
		a.Authorization.From = wire.DelegatedPrefix + agent
		return wire.SignDelegated(key, reqs.Scheme, reqs.Network, a.Authorization)
	}
}
