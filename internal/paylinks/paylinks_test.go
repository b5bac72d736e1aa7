package paylinks_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/paylinks"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/sqlite"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

type env struct {
	svc   *service.Service
	links *paylinks.Service
	clock *clock
}

var operator = pb.Principal{Role: pb.RoleOperator, ID: "operator"}

func newEnv(t testing.TB) *env {
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
	links, err := paylinks.New(svc, st, paylinks.Config{PublicURL: "https://pay.example.com/", Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); led.Close(); st.Close() })
	return &env{svc: svc, links: links, clock: c}
}

func must[T any](t testing.TB, r service.Result) T {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("unexpected error: %v", r.Err)
	}
	return r.Value.(T)
}

func (e *env) merchant(t testing.TB) pb.Principal {
	m := must[*service.NewMerchant](t, e.svc.CreateMerchant(context.Background(), operator, nil, "shop", "food"))
	return pb.Principal{Role: pb.RoleMerchant, ID: m.ID}
}

func (e *env) user(t testing.TB, fund int64) pb.Principal {
	u := must[*service.NewUser](t, e.svc.CreateUser(context.Background(), operator, nil, "payer"))
	p := pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
	if fund > 0 {
		must[*pb.Topup](t, e.svc.Topup(context.Background(), p, nil, fund, "USD"))
	}
	return p
}

// TestPayLinkUses: a declined payment is recorded on the link but uses
// none of it; a retry with its Idempotency-Key of a payment that used the
// last use gets the payment again, not a refusal; a new payment is refused.
func TestPayLinkUses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.merchant(t)
	l := must[*pb.PayLink](t, e.links.Create(ctx, m, nil, paylinks.CreateParams{Amount: 500, Currency: "USD", Description: "soup", MaxUses: 1}))
	if l.URL != "https://pay.example.com/l/"+l.ID {
		t.Fatalf("url %s", l.URL)
	}
	poor := e.user(t, 100)
	r := e.links.Pay(ctx, poor, nil, l.ID, "")
	if p, ok := r.Value.(*pb.Payment); !ok || p.Status != pb.StatusDeclined || pb.ErrorCode(r.Err) != pb.DeclineInsufficientFunds {
		t.Fatalf("a payer without the funds: %+v", r)
	}
	rich := e.user(t, 1000)
	idem := func() *service.Idempotency {
		return &service.Idempotency{Caller: rich.ID, Key: "k1", Hash: [32]byte{1},
			Render: func(v any, err error) (int, []byte) { return 201, []byte(`{}`) }}
	}
	first := must[*pb.Payment](t, e.links.Pay(ctx, rich, idem(), l.ID, ""))
	if first.Status != pb.StatusCaptured || first.Metadata[pb.MetadataPayLink] != l.ID {
		t.Fatalf("payment: %+v", first)
	}
	if again := e.links.Pay(ctx, rich, idem(), l.ID, ""); again.Err != nil || !again.Replayed {
		t.Fatalf("the retry: %+v", again)
	}
	if r := e.links.Pay(ctx, rich, nil, l.ID, ""); pb.ErrorCode(r.Err) != pb.ErrPayLinkUsedUp || r.Value != nil {
		t.Fatalf("a second payment: %+v", r)
	}
	if r := e.links.Pay(ctx, rich, &service.Idempotency{Caller: rich.ID, Key: "k2", Hash: [32]byte{2},
		Render: func(v any, err error) (int, []byte) { return 409, []byte(`{}`) }}, l.ID, ""); pb.ErrorCode(r.Err) != pb.ErrPayLinkUsedUp || r.Value != nil {
		t.Fatalf("a second payment with a key: %+v", r)
	}
	ps, _, err := e.links.Payments(ctx, m, l.ID, "", 10)
	statuses := map[string]pb.PaymentStatus{}
	for _, p := range ps {
		statuses[p.ID] = p.Status
	}
	if err != nil || len(ps) != 2 || statuses[first.ID] != pb.StatusCaptured || statuses[r.Value.(*pb.Payment).ID] != pb.StatusDeclined {
		t.Fatalf("the link's payments: %+v %v", ps, err)
	}
	got, err := e.links.Link(ctx, m, l.ID)
	if err != nil || got.Uses != 1 {
		t.Fatalf("link: %+v %v", got, err)
	}
	other := e.merchant(t)
	if _, err := e.links.Link(ctx, other, l.ID); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Fatalf("another merchant reads the link: %v", err)
	}
	if r := e.links.Deactivate(ctx, other, nil, l.ID); pb.ErrorCode(r.Err) != pb.ErrNotFound {
		t.Fatalf("another merchant deactivates the link: %+v", r)
	}
}

// BenchmarkPayLink and BenchmarkPay: a payment through a link against the
// same payment made directly, one at a time, on SQLite.
func BenchmarkPayLink(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	m := e.merchant(b)
	l := must[*pb.PayLink](b, e.links.Create(ctx, m, nil, paylinks.CreateParams{Amount: 1, Currency: "USD", Description: "a cent"}))
	u := e.user(b, 1_000_000_000)
	b.ResetTimer()
	for range b.N {
		if r := e.links.Pay(ctx, u, nil, l.ID, ""); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

func BenchmarkPay(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	m := e.merchant(b)
	u := e.user(b, 1_000_000_000)
	b.ResetTimer()
	for range b.N {
		if r := e.svc.CreatePayment(ctx, u, nil, service.CreatePaymentParams{Amount: 1, Currency: "USD", MerchantID: m.ID,
			Description: "a cent", Metadata: map[string]string{pb.MetadataPayLink: "plink_x"}}); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}
