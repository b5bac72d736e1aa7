package webhooks_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/webhooks"
	"github.com/paybound/paybound/internal/whsig"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// transport answers each URL as answer says, keeping what it got.
type transport struct {
	mu     sync.Mutex
	got    map[string][]string // url → event ids
	sent   map[string][]sent   // url → requests
	answer func(url string) (int, error)
}

type sent struct {
	headers map[string]string
	body    []byte
}

func (tr *transport) Post(ctx context.Context, url string, h map[string]string, body []byte) (int, error) {
	status, err := tr.answer(url)
	if err == nil && status == 200 {
		tr.mu.Lock()
		tr.got[url] = append(tr.got[url], h["webhook-id"])
		if tr.sent == nil {
			tr.sent = map[string][]sent{}
		}
		tr.sent[url] = append(tr.sent[url], sent{h, body})
		tr.mu.Unlock()
	}
	return status, err
}

func (tr *transport) count(url string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.got[url])
}

// fixture is the core, a user with money, a merchant, and the webhooks.
type fixture struct {
	t        *testing.T
	st       *sqlite.Store
	svc      *service.Service
	hooks    *webhooks.Service
	reg      *webhooks.Registry
	user     pb.Principal
	merchant pb.Principal
}

func newFixture(t *testing.T, clk pb.Clock, tr webhooks.Transport, adjust func(*webhooks.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := webhooks.NewRegistry(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.New(ctx, ledger.Config{Store: st, Clock: clk, PanicOnInvariant: true, Observers: []ledger.Observer{reg.Observer(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := riskctl.NewControl(st, riskctl.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{Store: st, Ledger: led, Clock: clk, OperatorKey: strings.Repeat("k", 40),
		Mandates: mandates.NewPolicy(), Risk: rc, Sandbox: true})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := webhooks.Config{Transport: tr, SigningKey: key, Clock: clk, PollInterval: 5 * time.Millisecond, ReloadInterval: 10 * time.Millisecond}
	if adjust != nil {
		adjust(&cfg)
	}
	hooks, err := webhooks.New(svc, st, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, svc: svc, hooks: hooks, reg: reg}
	t.Cleanup(func() { hooks.Close(); led.Close(); st.Close() })
	op := pb.Principal{Role: pb.RoleOperator, ID: "operator"}
	u := svc.CreateUser(ctx, op, nil, "Ada").Value.(*service.NewUser)
	m := svc.CreateMerchant(ctx, op, nil, "Cafe", "food").Value.(*service.NewMerchant)
	f.user = pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
	f.merchant = pb.Principal{Role: pb.RoleMerchant, ID: m.ID}
	if r := svc.Topup(ctx, f.user, nil, 1_000_000, "USD"); r.Err != nil {
		t.Fatal(r.Err)
	}
	return f
}

func (f *fixture) endpoint(owner pb.Principal, url string, events ...string) *pb.WebhookEndpoint {
	f.t.Helper()
	r := f.hooks.Create(context.Background(), owner, nil, webhooks.CreateParams{URL: url, Events: events})
	if r.Err != nil {
		f.t.Fatal(r.Err)
	}
	return r.Value.(*pb.WebhookEndpoint)
}

func (f *fixture) pay(amount int64) {
	f.t.Helper()
	r := f.svc.CreatePayment(context.Background(), f.user, nil, service.CreatePaymentParams{Amount: amount, Currency: "USD", MerchantID: f.merchant.ID})
	if r.Err != nil {
		f.t.Fatal(r.Err)
	}
}

func (f *fixture) pending() []pb.WebhookEvent {
	f.t.Helper()
	evs, err := f.st.PendingWebhookEvents(context.Background(), 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// The schedule retries for more than a day, each wait stretched by at
// most a fifth and never shortened; past its end a delivery has failed.
func TestScheduleCoversADay(t *testing.T) {
	var total time.Duration
	for _, d := range webhooks.DefaultSchedule {
		total += d
	}
	if total < 24*time.Hour {
		t.Fatalf("the schedule spans %v, less than 24h", total)
	}
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	f := newFixture(t, clk, &transport{answer: func(string) (int, error) { return 500, nil }}, nil)
	at := clk.Now()
	for n := 1; n <= len(webhooks.DefaultSchedule); n++ {
		wait := webhooks.DefaultSchedule[n-1]
		for range 50 {
			next := webhooks.Next(f.hooks, n, at)
			if next == nil || next.Sub(at) < wait || next.Sub(at) > wait+wait/5 {
				t.Fatalf("after attempt %d: next %v, want within [%v, %v]", n, next, wait, wait+wait/5)
			}
		}
	}
	if next := webhooks.Next(f.hooks, len(webhooks.DefaultSchedule)+1, at); next != nil {
		t.Fatalf("after the last attempt: next %v, want none", next)
	}
}

// With no endpoint, payments write no event; with one subscribed to
// captures, a payment writes exactly its capture, with its parties, and
// another merchant's endpoint changes nothing.
func TestObserverWritesOnlyWhatIsSubscribed(t *testing.T) {
	clk := &clock{now: time.Now()}
	f := newFixture(t, clk, &transport{answer: func(string) (int, error) { return 200, nil }}, nil)
	f.pay(100)
	if evs := f.pending(); len(evs) != 0 {
		t.Fatalf("with no endpoint, a payment wrote %d events", len(evs))
	}
	other := f.svc.CreateMerchant(context.Background(), pb.Principal{Role: pb.RoleOperator, ID: "operator"}, nil, "Other", "food").Value.(*service.NewMerchant)
	f.endpoint(pb.Principal{Role: pb.RoleMerchant, ID: other.ID}, "https://other.example/h", "*")
	f.pay(100)
	if evs := f.pending(); len(evs) != 0 {
		t.Fatalf("another merchant's endpoint made a payment write %d events", len(evs))
	}
	f.endpoint(f.merchant, "https://cafe.example/h", pb.EventPaymentCaptured)
	f.pay(250)
	evs := f.pending()
	if len(evs) != 1 || evs[0].Type != pb.EventPaymentCaptured || evs[0].ObjectKind != pb.ObjectPayment {
		t.Fatalf("events: %+v", evs)
	}
	if p := evs[0].Parties; len(p) != 2 || p[0] != f.user.ID || p[1] != f.merchant.ID {
		t.Fatalf("parties %v, want the payer and the merchant", p)
	}
	if !strings.Contains(string(evs[0].Object), `"status":"captured"`) || !strings.Contains(string(evs[0].Object), `"amount":250`) {
		t.Fatalf("the snapshot is not the payment as captured: %s", evs[0].Object)
	}
	// Authorized and captured in one operation: each event shows its state.
	f.endpoint(f.merchant, "https://cafe.example/auth", pb.EventPaymentAuthorized)
	f.pay(300)
	evs = slices.DeleteFunc(f.pending(), func(e pb.WebhookEvent) bool { return !strings.Contains(string(e.Object), `"amount":300`) })
	if len(evs) == 2 && evs[0].Type == pb.EventPaymentCaptured { // one instant: their IDs sort at random
		evs[0], evs[1] = evs[1], evs[0]
	}
	if len(evs) != 2 || evs[0].Type != pb.EventPaymentAuthorized || evs[1].Type != pb.EventPaymentCaptured {
		t.Fatalf("events of an automatic capture: %+v", evs)
	}
	if o := string(evs[0].Object); !strings.Contains(o, `"status":"authorized"`) || !strings.Contains(o, `"amount_captured":0`) {
		t.Fatalf("payment.authorized's snapshot: %s", o)
	}
	if o := string(evs[1].Object); !strings.Contains(o, `"status":"captured"`) || !strings.Contains(o, `"amount_captured":300`) {
		t.Fatalf("payment.captured's snapshot: %s", o)
	}
}

// A slow endpoint holds only its own share of the concurrency: another
// endpoint's deliveries all arrive while the slow one is stuck.
func TestSlowEndpointDoesNotDelayAnother(t *testing.T) {
	clk := &clock{now: time.Now()}
	release := make(chan struct{})
	var slowInFlight, slowMax atomic.Int32
	tr := &transport{got: map[string][]string{}}
	tr.answer = func(url string) (int, error) {
		if strings.Contains(url, "slow") {
			n := slowInFlight.Add(1)
			for m := slowMax.Load(); n > m && !slowMax.CompareAndSwap(m, n); m = slowMax.Load() {
			}
			<-release
			slowInFlight.Add(-1)
		}
		return 200, nil
	}
	f := newFixture(t, clk, tr, func(c *webhooks.Config) { c.Concurrency, c.PerEndpoint = 8, 2 })
	f.endpoint(f.merchant, "https://slow.example/h", "*")
	f.endpoint(f.merchant, "https://fast.example/h", "*")
	f.hooks.Start()
	for range 20 {
		f.pay(100)
	}
	waitFor(t, "the fast endpoint's 40 events", func() bool { return tr.count("https://fast.example/h") == 40 })
	if n := slowMax.Load(); n != 2 {
		t.Fatalf("the slow endpoint had %d attempts in flight, want its share, 2", n)
	}
	close(release)
	waitFor(t, "the slow endpoint's 40 events", func() bool { return tr.count("https://slow.example/h") == 40 })
}

// An endpoint that fails every attempt for 3 days is disabled, and its
// owner's other endpoint gets webhook_endpoint.disabled.
func TestDisabledAfterThreeDaysOfFailures(t *testing.T) {
	clk := &clock{now: time.Now()}
	tr := &transport{got: map[string][]string{}}
	tr.answer = func(url string) (int, error) {
		if strings.Contains(url, "down") {
			return 0, context.DeadlineExceeded
		}
		return 200, nil
	}
	f := newFixture(t, clk, tr, func(c *webhooks.Config) {
		c.Schedule = make([]time.Duration, 200)
		for i := range c.Schedule {
			c.Schedule[i] = time.Hour
		}
	})
	down := f.endpoint(f.merchant, "https://down.example/h", pb.EventPaymentCaptured)
	f.endpoint(f.merchant, "https://up.example/h", pb.EventWebhookEndpointDisabled)
	f.hooks.Start()
	f.pay(100)
	ctx := context.Background()
	// Let every hour of three days and a bit pass, an attempt each.
	start := clk.Now()
	for clk.Now().Sub(start) < 76*time.Hour {
		clk.Advance(90 * time.Minute)
		time.Sleep(30 * time.Millisecond)
		if e, _ := f.st.WebhookEndpoint(ctx, down.ID); e.Status == pb.WebhookDisabled {
			break
		}
	}
	waitFor(t, "the endpoint disabled", func() bool {
		e, _ := f.st.WebhookEndpoint(ctx, down.ID)
		return e.Status == pb.WebhookDisabled && e.DisabledReason == "failing"
	})
	e, _ := f.st.WebhookEndpoint(ctx, down.ID)
	if e.FailingSince == nil || e.UpdatedAt.Add(time.Second).Sub(*e.FailingSince) < pb.WebhookDisableAfter { // UpdatedAt is in whole seconds
		t.Fatalf("disabled %v after its failures began at %v; want 3 days", e.UpdatedAt, e.FailingSince)
	}
	waitFor(t, "webhook_endpoint.disabled delivered", func() bool { return tr.count("https://up.example/h") == 1 })
	ds, _, _ := f.st.ListWebhookDeliveries(ctx, down.ID, "", 10)
	if len(ds) != 1 || ds[0].Status != pb.DeliveryPending || ds[0].Attempts < 2 {
		t.Fatalf("the failing delivery: %+v", ds)
	}
}

// An entry logged with a Notice (as checkout logs checkout_session.completed)
// reaches its parties: a standard endpoint gets the notice's object, an
// ACP endpoint its ACP event signed with Merchant-Signature; an ACP
// endpoint gets no event without an ACP form.
func TestNoticeReachesStandardAndACPEndpoints(t *testing.T) {
	clk := &clock{now: time.Now()}
	tr := &transport{got: map[string][]string{}, answer: func(string) (int, error) { return 200, nil }}
	f := newFixture(t, clk, tr, nil)
	std := f.endpoint(f.merchant, "https://std.example/h", "*")
	r := f.hooks.Create(context.Background(), f.merchant, nil, webhooks.CreateParams{URL: "https://acp.example/h", Events: []string{"*"}, Format: pb.WebhookFormatACP})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	acp := r.Value.(*pb.WebhookEndpoint)
	f.hooks.Start()
	res := f.svc.Run(context.Background(), nil, func(tx *ledger.Tx) (any, error) {
		return nil, tx.Log(pb.LogEvent{Type: pb.EventCheckoutSessionCompleted, Subject: "cs_1",
			Actor: pb.Actor{Role: pb.RoleMerchant, ID: f.merchant.ID}, Data: map[string]any{"amount": 100},
			Notice: &pb.Notice{Object: map[string]any{"id": "cs_1", "object": "checkout_session"}, Parties: []string{f.merchant.ID},
				ACP: map[string]any{"type": "order_create", "data": map[string]any{"id": "ord_1"}}}})
	})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	f.pay(100) // payment events: the standard endpoint only
	waitFor(t, "the deliveries", func() bool { return tr.count(std.URL) == 3 && tr.count(acp.URL) == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := tr.count(acp.URL); n != 1 {
		t.Fatalf("the ACP endpoint got %d events; want only the one with an ACP form", n)
	}
	tr.mu.Lock()
	a := tr.sent[acp.URL][0]
	var first sent // the standard endpoint's checkout event (order is not promised)
	for _, x := range tr.sent[std.URL] {
		if strings.Contains(string(x.body), "checkout_session.completed") {
			first = x
		}
	}
	tr.mu.Unlock()
	if string(a.body) != `{"data":{"id":"ord_1"},"type":"order_create"}` || a.headers["webhook-id"] != "" {
		t.Fatalf("the ACP delivery: %s %v", a.body, a.headers)
	}
	if err := whsig.VerifyACP(a.headers["Merchant-Signature"], acp.Secret, a.body, time.Now()); err != nil {
		t.Fatalf("Merchant-Signature %q: %v", a.headers["Merchant-Signature"], err)
	}
	if !strings.Contains(string(first.body), `"type":"checkout_session.completed"`) || !strings.Contains(string(first.body), `"object":{"id":"cs_1","object":"checkout_session"}`) {
		t.Fatalf("the standard delivery: %s", first.body)
	}
}
