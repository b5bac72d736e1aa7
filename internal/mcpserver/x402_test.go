package mcpserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/cmd/paybound/cli"
	"github.com/paybound/paybound/internal/mcpserver"
	"github.com/paybound/paybound/internal/x402pay"
	"github.com/paybound/paybound/x402"
)

const testNetwork = "paybound:test"

// facilitator is the world's x402 facilitator called in process.
type facilitator struct{ s *x402pay.Service }

func (f facilitator) Verify(ctx context.Context, req *x402.FacilitatorRequest) (*x402.VerifyResponse, error) {
	v, err := f.s.Verify(ctx, req)
	return &v, err
}

func (f facilitator) Settle(ctx context.Context, req *x402.FacilitatorRequest) (*x402.SettlementResponse, error) {
	v, err := f.s.Settle(ctx, req)
	return &v, err
}

// x402World is a world whose /mcp signs delegated x402 authorizations,
// with a seller on loopback whose routes settle at the world's
// facilitator. allow is the operator's hosts.
func x402World(t *testing.T, allow ...string) (*world, *x402pay.Service, pb.Principal, *httptest.Server) {
	w := newWorld(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	fac, err := x402pay.New(w.svc, w.st, x402pay.Config{Network: testNetwork, Clock: w.clock, Delegate: pub})
	if err != nil {
		t.Fatal(err)
	}
	fetcher := &cli.X402Fetcher{Allow: allow, Closed: true, Now: w.clock.Now}
	w.be.X402 = cli.DelegatedX402(fetcher, priv, testNetwork)
	w.be.X402Tool = cli.DelegatedX402Tool(fetcher, priv, testNetwork)
	seller := w.merchant(t, "api")
	paid := func(amount int64, asset string, h http.HandlerFunc) http.Handler {
		return (&x402.Middleware{Network: testNetwork, PayTo: seller.ID, Facilitator: facilitator{fac},
			Price: x402.Fixed(amount, asset, "a test resource"), Now: w.clock.Now}).Wrap(h)
	}
	text := func(s string) http.HandlerFunc {
		return func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(rw, s)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/paid", paid(1_500_000, "USD", text("hello, paid")))             // 1.50 USD
	mux.Handle("/pricey", paid(12_000_000, "USD", text("pricey")))               // 12.00 USD, above the mandate's 10.00
	mux.Handle("/expensive", paid(50_000_000, "USD", text("expensive")))         // 50.00 USD
	mux.Handle("/eur", paid(1_000_000, "EUR", text("euros")))                    // 1.00 EUR
	mux.Handle("/big", paid(100_000, "USD", text(strings.Repeat("x", 100<<10)))) // 0.10 USD, 100 KiB
	mux.Handle("/fail", paid(100_000, "USD", func(rw http.ResponseWriter, _ *http.Request) {
		http.Error(rw, "out of stock", http.StatusInternalServerError)
	}))
	mux.Handle("/echo", paid(200_000, "USD", func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rw.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		rw.Write(append([]byte(r.Method+" "), b...))
	}))
	// A seller's MCP server with paid tools (x402 over MCP).
	tools := mcp.NewServer(&mcp.Implementation{Name: "seller", Version: "1"}, nil)
	paidTool := func(amount int64, name string, fail bool) {
		pt := &x402.PaidTool{Network: testNetwork, PayTo: seller.ID, Facilitator: facilitator{fac}, Price: x402.Price{Amount: amount, Asset: "USD"}}
		pt.Add(tools, &mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if fail {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "out of stock"}}}, nil
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "forecast for " + string(req.Params.Arguments)}},
				StructuredContent: map[string]any{"sunny": true}}, nil
		})
	}
	paidTool(500_000, "forecast", false)  // 0.50 USD
	paidTool(12_000_000, "report", false) // 12.00 USD, above the mandate's 10.00
	paidTool(100_000, "broken", false)
	paidTool(100_000, "failing", true)
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return tools }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return w, fac, seller, srv
}

// TestPayX402Resource: pay_x402_resource fetches a paid URL within the
// mandate, signing as the calling agent, and answers the resource and
// its receipt; every refusal moves nothing.
func TestPayX402Resource(t *testing.T) {
	w, _, seller, srv := x402World(t, "127.0.0.1")
	u := w.user(t, 10000)
	a := w.agent(t, u)
	mdt := w.mandate(t, u, a, 1000, 3000, 0, seller.ID)
	cs := w.connect(t, mcpserver.AgentSide, a)
	args := func(path, key string, kv ...any) map[string]any {
		in := map[string]any{"url": srv.URL + path, "max_amount": 200, "currency": "USD", "mandate_id": mdt, "idempotency_key": key}
		for i := 0; i < len(kv); i += 2 {
			in[kv[i].(string)] = kv[i+1]
		}
		return in
	}
	var out mcpserver.X402Response
	txt := ok(t, cs, "pay_x402_resource", args("/paid", "k1"), &out)
	if out.Status != 200 || out.Body != "hello, paid" || !out.Paid || out.Receipt == nil || out.Receipt.Amount != 150 ||
		out.Receipt.AmountFormatted != "1.50 USD" || out.Receipt.Network != testNetwork || !strings.Contains(txt, "hello, paid") {
		t.Fatalf("pay_x402_resource = %+v, %q", out, txt)
	}
	var p mcpserver.PaymentOut
	ok(t, cs, "get_payment", map[string]any{"payment_id": out.Receipt.PaymentID}, &p)
	if p.Status != "captured" || p.AgentID != a.ID || p.MandateID != mdt || p.MerchantID != seller.ID || p.Amount != 150 {
		t.Fatalf("the receipt's payment: %+v", p)
	}
	if got := w.available(t, seller); got != 150 {
		t.Fatalf("seller's balance %d; want 150", got)
	}
	// A retry with the same key pays once and answers the same receipt.
	var again mcpserver.X402Response
	ok(t, cs, "pay_x402_resource", args("/paid", "k1"), &again)
	if again.Receipt == nil || again.Receipt.PaymentID != out.Receipt.PaymentID || w.available(t, seller) != 150 {
		t.Fatalf("retry = %+v; seller has %d", again, w.available(t, seller))
	}
	// A POST's body goes to the seller.
	var echo mcpserver.X402Response
	ok(t, cs, "pay_x402_resource", args("/echo", "k2", "method", "POST", "body", `{"q":1}`), &echo)
	if echo.Body != `POST {"q":1}` || echo.ContentType != "application/json" || echo.Receipt.Amount != 20 {
		t.Fatalf("POST = %+v", echo)
	}
	// A long answer is cut at the limit, and says so.
	var big mcpserver.X402Response
	ok(t, cs, "pay_x402_resource", args("/big", "k3"), &big)
	if !big.Truncated || len(big.Body) != mcpserver.MaxX402Body || big.Receipt.Amount != 10 {
		t.Fatalf("big: truncated %v, %d bytes, %+v", big.Truncated, len(big.Body), big.Receipt)
	}
	// A failed answer is not charged.
	var failed mcpserver.X402Response
	ok(t, cs, "pay_x402_resource", args("/fail", "k4"), &failed)
	if failed.Status != 500 || failed.Paid || failed.Receipt != nil {
		t.Fatalf("fail = %+v", failed)
	}
	paidSoFar := int64(150 + 20 + 10)
	if got := w.available(t, seller); got != paidSoFar {
		t.Fatalf("seller's balance %d; want %d", got, paidSoFar)
	}

	other := w.agent(t, w.user(t, 0))
	otherMdt := w.mandate(t, pb.Principal{Role: pb.RoleUser, ID: other.UserID, UserID: other.UserID}, other, 1000, 3000, 0)
	for _, c := range []struct {
		name string
		args map[string]any
		code pb.Code
	}{
		{"price above max_amount", args("/expensive", "r1"), pb.ErrX402PriceAboveMax},
		{"above the mandate", args("/pricey", "r2", "max_amount", 5000), pb.Code("mandate_amount_exceeded")},
		{"another user's mandate", args("/paid", "r3", "mandate_id", otherMdt), pb.Code("mandate_not_found")},
		{"another currency", args("/eur", "r4"), pb.ErrX402NotPayable},
		{"host not allowed", args("/paid", "r5", "url", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/paid"), pb.ErrForbidden},
		{"not http", args("/paid", "r6", "url", "file:///etc/passwd"), pb.ErrParameterInvalid},
		{"credentials in the URL", args("/paid", "r7", "url", strings.Replace(srv.URL, "http://", "http://u:p@", 1)+"/paid"), pb.ErrParameterInvalid},
		{"unknown method", args("/paid", "r8", "method", "TRACE"), pb.ErrParameterInvalid},
		{"GET with a body", args("/paid", "r9", "body", "x"), pb.ErrParameterInvalid},
		{"body too large", args("/echo", "r10", "method", "POST", "body", strings.Repeat("x", mcpserver.MaxX402RequestBody+1)), pb.ErrParameterInvalid},
		{"no mandate", args("/paid", "r11", "mandate_id", ""), pb.ErrParameterMissing},
		{"bad currency", args("/paid", "r12", "currency", "usd"), pb.ErrInvalidCurrency},
		{"zero max_amount", args("/paid", "r13", "max_amount", 0), pb.ErrInvalidAmount},
		{"no key", args("/paid", ""), pb.ErrIdempotencyRequired},
		{"key reused for another URL", args("/echo", "k1"), pb.ErrIdempotencyConflict},
	} {
		t.Run(c.name, func(t *testing.T) { refused(t, cs, "pay_x402_resource", c.args, c.code) })
	}
	if got := w.available(t, seller); got != paidSoFar {
		t.Fatalf("a refused call moved money: seller has %d; want %d", got, paidSoFar)
	}
	if got := w.available(t, u); got != 10000-paidSoFar {
		t.Fatalf("payer has %d; want %d", got, 10000-paidSoFar)
	}
	w.verify(t)
}

// TestPayX402Closed: without allowed hosts the server fetches nothing,
// and a merchant has no such tool.
func TestPayX402Closed(t *testing.T) {
	w, _, seller, srv := x402World(t)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	mdt := w.mandate(t, u, a, 1000, 3000, 0, seller.ID)
	cs := w.connect(t, mcpserver.AgentSide, a)
	refused(t, cs, "pay_x402_resource", map[string]any{"url": srv.URL + "/paid", "max_amount": 200, "currency": "USD",
		"mandate_id": mdt, "idempotency_key": "k"}, pb.ErrForbidden)
	w.be.X402 = nil
	refused(t, cs, "pay_x402_resource", map[string]any{"url": srv.URL + "/paid", "max_amount": 200, "currency": "USD",
		"mandate_id": mdt, "idempotency_key": "k"}, pb.ErrForbidden)
	ms := w.connect(t, mcpserver.MerchantSide, seller)
	res, err := ms.CallTool(context.Background(), &mcp.CallToolParams{Name: "pay_x402_resource", Arguments: map[string]any{}})
	if err == nil && !res.IsError {
		t.Fatalf("a merchant called pay_x402_resource: %+v", res)
	}
	if got := w.available(t, seller); got != 0 {
		t.Fatalf("seller has %d", got)
	}
}

// TestPayX402ForgedDelegation: an authorization "delegated" by any key
// but the server's is refused by the facilitator, and nothing moves.
func TestPayX402ForgedDelegation(t *testing.T) {
	w, _, seller, srv := x402World(t, "127.0.0.1")
	_, forged, _ := ed25519.GenerateKey(rand.Reader)
	w.be.X402 = cli.DelegatedX402(&cli.X402Fetcher{Allow: []string{"127.0.0.1"}, Now: w.clock.Now}, forged, testNetwork)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	mdt := w.mandate(t, u, a, 1000, 3000, 0, seller.ID)
	cs := w.connect(t, mcpserver.AgentSide, a)
	e := refused(t, cs, "pay_x402_resource", map[string]any{"url": srv.URL + "/paid", "max_amount": 200, "currency": "USD",
		"mandate_id": mdt, "idempotency_key": "k"}, pb.ErrX402PaymentFailed)
	if !strings.Contains(e.Message, "signature") {
		t.Fatalf("forged delegation: %+v", e)
	}
	if w.available(t, seller) != 0 || w.available(t, u) != 10000 {
		t.Fatal("a forged delegation moved money")
	}
	w.verify(t)
}

// TestCallPaidTool: call_paid_tool calls a seller's paid MCP tool (x402
// over MCP) and pays it within the mandate, as the calling agent; every
// refusal moves nothing, and a failed tool is not charged.
func TestCallPaidTool(t *testing.T) {
	w, _, seller, srv := x402World(t, "127.0.0.1")
	u := w.user(t, 10000)
	a := w.agent(t, u)
	mdt := w.mandate(t, u, a, 1000, 3000, 0, seller.ID)
	cs := w.connect(t, mcpserver.AgentSide, a)
	args := func(tool, key string, kv ...any) map[string]any {
		in := map[string]any{"server_url": srv.URL + "/mcp", "tool": tool, "arguments": map[string]any{"city": "Lyon"},
			"max_amount": 100, "currency": "USD", "mandate_id": mdt, "idempotency_key": key}
		for i := 0; i < len(kv); i += 2 {
			in[kv[i].(string)] = kv[i+1]
		}
		return in
	}
	var out mcpserver.PaidToolResult
	txt := ok(t, cs, "call_paid_tool", args("forecast", "k1"), &out)
	if out.IsError || !out.Paid || out.Receipt == nil || out.Receipt.Amount != 50 || !strings.Contains(out.Text, "Lyon") ||
		out.StructuredContent.(map[string]any)["sunny"] != true || !strings.Contains(txt, "0.50 USD") {
		t.Fatalf("call_paid_tool = %+v, %q", out, txt)
	}
	var p mcpserver.PaymentOut
	ok(t, cs, "get_payment", map[string]any{"payment_id": out.Receipt.PaymentID}, &p)
	if p.Status != "captured" || p.AgentID != a.ID || p.MandateID != mdt || p.Amount != 50 {
		t.Fatalf("the receipt's payment: %+v", p)
	}
	var again mcpserver.PaidToolResult
	ok(t, cs, "call_paid_tool", args("forecast", "k1"), &again)
	if again.Receipt == nil || again.Receipt.PaymentID != out.Receipt.PaymentID || w.available(t, seller) != 50 {
		t.Fatalf("retry = %+v; seller has %d", again, w.available(t, seller))
	}
	var failed mcpserver.PaidToolResult
	ok(t, cs, "call_paid_tool", args("failing", "k2"), &failed)
	if !failed.IsError || failed.Paid || failed.Text != "out of stock" {
		t.Fatalf("failing tool = %+v", failed)
	}
	for _, c := range []struct {
		name string
		args map[string]any
		code pb.Code
	}{
		{"price above max_amount", args("report", "r1"), pb.ErrX402PriceAboveMax},
		{"above the mandate", args("report", "r2", "max_amount", 5000), pb.Code("mandate_amount_exceeded")},
		{"host not allowed", args("forecast", "r3", "server_url", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/mcp"), pb.ErrForbidden},
		{"not http", args("forecast", "r4", "server_url", "ftp://127.0.0.1/mcp"), pb.ErrParameterInvalid},
		{"no tool", args("", "r5"), pb.ErrParameterInvalid},
		{"no mandate", args("forecast", "r6", "mandate_id", ""), pb.ErrParameterMissing},
		{"key reused for another tool", args("broken", "k1"), pb.ErrIdempotencyConflict},
	} {
		t.Run(c.name, func(t *testing.T) { refused(t, cs, "call_paid_tool", c.args, c.code) })
	}
	if got := w.available(t, seller); got != 50 {
		t.Fatalf("seller has %d; want 50", got)
	}
	w.verify(t)
}
