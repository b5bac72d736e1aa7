package mcpserver_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandatereqs"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/mcpserver"
	"github.com/paybound/paybound/internal/paylinks"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/settlement"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/tlog"
	"github.com/paybound/paybound/internal/translog"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

var operator = pb.Principal{Role: pb.RoleOperator, ID: "operator"}

// world is a server's core and capabilities over a real SQLite store,
// composed as Main composes them, with the MCP backend over them.
type world struct {
	st    pb.Store
	svc   *service.Service
	mdt   *mandates.Service
	reqs  *mandatereqs.Service
	clock *clock
	be    *mcpserver.InProcess
}

func newWorld(t testing.TB) *world {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "paybound.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	led, err := ledger.New(ctx, ledger.Config{Store: st, Clock: c, PanicOnInvariant: true})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := riskctl.NewControl(st, riskctl.Config{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{Store: st, Ledger: led, Clock: c, OperatorKey: service.NewAPIKey(pb.RoleOperator),
		Sandbox: true, Mandates: mandates.NewPolicy(), Risk: rc})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := tlog.NewKey("paybound.test/log")
	if err != nil {
		t.Fatal(err)
	}
	log, err := translog.New(svc, st, translog.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	links, err := paylinks.New(svc, st, paylinks.Config{PublicURL: "https://pay.example.com/", Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	mdt := mandates.New(svc, st, mandates.Config{Clock: c})
	co, err := checkout.New(svc, st, checkout.Config{CardKey: make([]byte, 32), BaseURL: "https://pay.example.com", Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	reqs := mandatereqs.New(svc, mdt, st, mandatereqs.Config{Clock: c})
	t.Cleanup(func() { svc.Close(); led.Close(); st.Close() })
	return &world{st: st, svc: svc, mdt: mdt, reqs: reqs, clock: c, be: &mcpserver.InProcess{Core: svc, Mandates: mdt, Requests: reqs,
		Disputes: disputes.New(svc, log, st), Links: links, Settlement: settlement.New(st, settlement.Config{}),
		Checkout: co, PublicURL: "https://pay.example.com"}}
}

func must[T any](t testing.TB, r service.Result) T {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("unexpected error: %v", r.Err)
	}
	return r.Value.(T)
}

func (w *world) merchant(t testing.TB, name string) pb.Principal {
	m := must[*service.NewMerchant](t, w.svc.CreateMerchant(context.Background(), operator, nil, name, "food"))
	return pb.Principal{Role: pb.RoleMerchant, ID: m.ID}
}

func (w *world) user(t testing.TB, fund int64) pb.Principal {
	u := must[*service.NewUser](t, w.svc.CreateUser(context.Background(), operator, nil, "payer"))
	p := pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
	if fund > 0 {
		must[*pb.Topup](t, w.svc.Topup(context.Background(), p, nil, fund, "USD"))
	}
	return p
}

func (w *world) agent(t testing.TB, user pb.Principal) pb.Principal {
	a := must[*service.NewAgent](t, w.svc.CreateAgent(context.Background(), user, nil, "bot", nil))
	return pb.Principal{Role: pb.RoleAgent, ID: a.ID, UserID: user.ID}
}

// mandate grants agent a USD mandate: at most max per payment, budget in
// total, optionally only at merchants, confirmation above confirm (0: none).
func (w *world) mandate(t testing.TB, user, agent pb.Principal, max, budget, confirm int64, merchants ...string) string {
	v := must[*mandates.View](t, w.mdt.Create(context.Background(), user, nil, pb.Mandate{AgentID: agent.ID, Description: "coffee",
		Currency: "USD", MaxAmount: max, Budget: pb.Budget{Amount: budget, Period: pb.PeriodTotal}, MerchantIDs: merchants,
		ConfirmAbove: confirm}, nil))
	return v.ID
}

// available is a party's available balance in USD.
func (w *world) available(t testing.TB, p pb.Principal) int64 {
	bs, err := w.svc.Balances(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Currency == "USD" {
			return b.Available
		}
	}
	return 0
}

// verify checks that the ledger's balances still sum to zero.
func (w *world) verify(t testing.TB) {
	t.Helper()
	r, err := w.svc.VerifyLedger(context.Background(), operator)
	if err != nil || !r.OK {
		t.Fatalf("ledger verify: %+v, %v", r, err)
	}
}

// connect opens an MCP session over the SDK's in-memory transport to the
// server of side, acting as caller.
func (w *world) connect(t testing.TB, side mcpserver.Side, caller pb.Principal) *mcp.ClientSession {
	t.Helper()
	return w.connectWith(t, side, caller, nil, nil)
}

// connectWith is connect with a client of opts, in a session of sopts.
func (w *world) connectWith(t testing.TB, side mcpserver.Side, caller pb.Principal, opts *mcp.ClientOptions, sopts *mcp.ClientSessionOptions) *mcp.ClientSession {
	t.Helper()
	srv, err := mcpserver.NewServer(side, mcpserver.Config{Clock: w.clock, PollInterval: 10 * time.Millisecond,
		Backend: func(context.Context, *mcp.RequestExtra) (mcpserver.Backend, error) { return w.be.For(caller), nil }})
	if err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts).Connect(ctx, ct, sopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return cs
}

// call calls tool with args and decodes its structuredContent into out
// (when not nil). It fails the test on a protocol error.
func call(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", tool, err)
	}
	if out != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: structuredContent %s: %v", tool, b, err)
		}
	}
	return res
}

// ok calls tool, requires success, and decodes its output into out.
func ok(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any, out any) string {
	t.Helper()
	res := call(t, cs, tool, args, out)
	if res.IsError {
		t.Fatalf("%s(%v) failed: %s", tool, args, text(res))
	}
	return text(res)
}

// refused calls tool, requires an error result with code, and returns it.
func refused(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any, code pb.Code) *pb.Error {
	t.Helper()
	var out struct {
		Error *pb.Error `json:"error"`
	}
	res := call(t, cs, tool, args, &out)
	if !res.IsError || out.Error == nil || out.Error.Code != code {
		t.Fatalf("%s(%v) = isError %v, %+v, %q; want error %s", tool, args, res.IsError, out.Error, text(res), code)
	}
	return out.Error
}

func text(res *mcp.CallToolResult) string {
	if len(res.Content) == 0 {
		return ""
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}
