package service_test

import (
	"context"
	"github.com/paybound/paybound/internal/tlog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/storetest"
	"pgregory.net/rapid"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// tb is what both *testing.T and *rapid.T offer.
type tb interface {
	Helper()
	Fatal(...any)
	Fatalf(string, ...any)
	Skip(...any)
	Cleanup(func())
}

// newLogKey makes a transparency-log key for a test service.
func newLogKey(t tb) string {
	skey, _, err := tlog.NewKey("paybound.test/log")
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

var operator = pb.Principal{Role: pb.RoleOperator, ID: "operator"}

type env struct {
	svc   *service.Service
	st    pb.Store
	clock *fakeClock
	feeBP int64
	cfg   service.Config // as the service was made
	db    string         // the PostgreSQL URL, when the store is PostgreSQL
	// confirm is step-up over svc (confirmOf): one per process, as its
	// limit on wrong codes is.
	confirm *confirm.Service
	// logKey signs the transparency log's checkpoints (logOf).
	logKey string
	// mandates is the mandates capability over svc (mandatesOf).
	mandates *mandates.Service
}

// newEnv opens a service over a fresh store; opts adjust its Config.
func newEnv(t tb, dir string, feeBPS int64, opts ...func(*service.Config)) *env {
	ctx := context.Background()
	var st pb.Store
	var err error
	var db string
	if storetest.UsePostgres() {
		db = storetest.PostgresURL(t)
		st, err = postgres.Open(ctx, db)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "paybound.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	w, err := ledger.New(ctx, ledger.Config{Store: st, Clock: clock, PanicOnInvariant: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := service.Config{Store: st, Ledger: w, Clock: clock, OperatorKey: service.NewAPIKey(pb.RoleOperator), FeeBPS: feeBPS, Sandbox: true,
		Mandates: mandates.NewPolicy()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Risk == nil {
		cfg.Risk = riskWith(&cfg, nil)
	}
	svc, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); w.Close(); st.Close() })
	e := &env{svc: svc, st: st, clock: clock, feeBP: feeBPS, cfg: cfg, db: db, logKey: newLogKey(t)}
	e.confirm = confirmOf(t, e)
	e.mandates = mandatesOf(e)
	return e
}

func must[T any](t tb, r service.Result) T {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("unexpected error: %v", r.Err)
	}
	return r.Value.(T)
}

func (e *env) user(t tb, fund int64, cur string) pb.Principal {
	ctx := context.Background()
	u := must[*service.NewUser](t, e.svc.CreateUser(ctx, operator, nil, "payer"))
	p := pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
	if fund > 0 {
		must[*pb.Topup](t, e.svc.Topup(ctx, p, nil, fund, cur))
	}
	return p
}

func (e *env) merchant(t tb) pb.Principal {
	m := must[*service.NewMerchant](t, e.svc.CreateMerchant(context.Background(), operator, nil, "shop", "food"))
	return pb.Principal{Role: pb.RoleMerchant, ID: m.ID}
}

func (e *env) available(t tb, p pb.Principal, cur string) int64 {
	bs, err := e.svc.Balances(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Currency == cur {
			return b.Available
		}
	}
	return 0
}

func (e *env) verify(t tb) {
	t.Helper()
	r, err := e.svc.VerifyLedger(context.Background(), operator)
	if err != nil || !r.OK {
		t.Fatalf("ledger verify: %+v %v", r, err)
	}
}

// TestHotWallet: 200 concurrent payments of 1.00 from a wallet holding
// 50.00: exactly 50 succeed, the rest decline insufficient_funds, and the
// wallet ends at 0.00.
func TestHotWallet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 0)
	payer, m := e.user(t, 5000, "USD"), e.merchant(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[pb.Code]int{}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.svc.CreatePayment(context.Background(), payer, nil, service.CreatePaymentParams{Amount: 100, Currency: "USD", MerchantID: m.ID})
			mu.Lock()
			codes[pb.ErrorCode(r.Err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[""] != 50 || codes[pb.DeclineInsufficientFunds] != 150 || len(codes) != 2 {
		t.Fatalf("outcomes %v; want 50 successes and 150 insufficient_funds", codes)
	}
	if got := e.available(t, payer, "USD"); got != 0 {
		t.Fatalf("wallet holds %d; want 0", got)
	}
	if got := e.available(t, m, "USD"); got != 5000 {
		t.Fatalf("merchant holds %d; want 5000", got)
	}
	list, _, err := e.svc.ListPayments(context.Background(), payer, "", 100)
	if err != nil || len(list) != 100 {
		t.Fatalf("list: %d payments, %v", len(list), err)
	}
	e.verify(t)
}

// TestActionsByStatus tries capture, cancel and refund on a payment in each
// status and checks which succeed.
func TestActionsByStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 0)
	ctx := context.Background()
	payer, m := e.user(t, 100_000, "USD"), e.merchant(t)
	mk := func(t *testing.T, status pb.PaymentStatus) string {
		method := pb.CaptureManual
		if status == pb.StatusCaptured || status == pb.StatusRefunded {
			method = pb.CaptureAutomatic
		}
		params := service.CreatePaymentParams{Amount: 1000, Currency: "USD", MerchantID: m.ID, CaptureMethod: method}
		if status == pb.StatusDeclined {
			params.Amount = 1_000_000
		}
		r := e.svc.CreatePayment(ctx, payer, nil, params)
		p := r.Value.(*pb.Payment)
		switch status {
		case pb.StatusRefunded:
			must[*pb.Refund](t, e.svc.Refund(ctx, m, nil, p.ID, nil, ""))
		case pb.StatusCanceled:
			must[*pb.Payment](t, e.svc.Cancel(ctx, payer, nil, p.ID))
		case pb.StatusExpired:
			e.clock.Advance(pb.DefaultAuthorizationTTL)
			if n, err := e.svc.Sweep(ctx); err != nil || n < 1 {
				t.Fatalf("sweep expired %d, %v", n, err)
			}
		}
		got, err := e.svc.Payment(ctx, payer, p.ID)
		if err != nil || got.Status != status {
			t.Fatalf("set-up: payment is %v, %v; want %s", got, err, status)
		}
		return p.ID
	}
	type action struct {
		name string
		do   func(id string) service.Result
	}
	actions := []action{
		{"capture", func(id string) service.Result { return e.svc.Capture(ctx, m, nil, id, nil) }},
		{"cancel", func(id string) service.Result { return e.svc.Cancel(ctx, m, nil, id) }},
		{"refund", func(id string) service.Result { return e.svc.Refund(ctx, m, nil, id, nil, "") }},
	}
	allowed := map[pb.PaymentStatus]string{pb.StatusAuthorized: "capture cancel", pb.StatusCaptured: "refund"}
	for _, st := range []pb.PaymentStatus{pb.StatusAuthorized, pb.StatusCaptured, pb.StatusRefunded, pb.StatusCanceled, pb.StatusExpired, pb.StatusDeclined} {
		for _, a := range actions {
			t.Run(string(st)+"/"+a.name, func(t *testing.T) {
				id := mk(t, st)
				before, _ := e.svc.Payment(ctx, payer, id)
				r := a.do(id)
				ok := contains(allowed[st], a.name)
				if ok && r.Err != nil {
					t.Fatalf("%s on %s failed: %v", a.name, st, r.Err)
				}
				if !ok {
					if pb.ErrorCode(r.Err) != pb.ErrPaymentState {
						t.Fatalf("%s on %s = %v; want payment_unexpected_state", a.name, st, r.Err)
					}
					after, _ := e.svc.Payment(ctx, payer, id)
					if after.Status != before.Status || after.AmountCaptured != before.AmountCaptured || after.AmountRefunded != before.AmountRefunded {
						t.Fatalf("refused %s changed the payment: %+v -> %+v", a.name, before, after)
					}
				}
			})
		}
	}
	e.verify(t)
}

func contains(list, word string) bool {
	for i := 0; i+len(word) <= len(list); i++ {
		if list[i:i+len(word)] == word && (i == 0 || list[i-1] == ' ') && (i+len(word) == len(list) || list[i+len(word)] == ' ') {
			return true
		}
	}
	return false
}

func TestCaptureAfterExpiryFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 0)
	ctx := context.Background()
	payer, m := e.user(t, 1000, "USD"), e.merchant(t)
	p := must[*pb.Payment](t, e.svc.CreatePayment(ctx, payer, nil, service.CreatePaymentParams{Amount: 700, Currency: "USD",
		MerchantID: m.ID, CaptureMethod: pb.CaptureManual, AuthorizationExpiresAt: e.clock.Now().Add(time.Hour)}))
	if got := e.available(t, payer, "USD"); got != 300 {
		t.Fatalf("available during hold = %d; want 300", got)
	}
	e.clock.Advance(time.Hour)
	// The sweeper has not run: the capture itself must notice the expiry.
	if r := e.svc.Capture(ctx, m, nil, p.ID, nil); pb.ErrorCode(r.Err) != pb.ErrPaymentState {
		t.Fatalf("capture after expiry = %v", r.Err)
	}
	got, _ := e.svc.Payment(ctx, payer, p.ID)
	if got.Status != pb.StatusExpired || e.available(t, payer, "USD") != 1000 {
		t.Fatalf("after expiry: %s, available %d", got.Status, e.available(t, payer, "USD"))
	}
	e.verify(t)
}

func TestPartialCaptureAndFees(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 250) // 2.5%
	ctx := context.Background()
	payer, m := e.user(t, 10_000, "USD"), e.merchant(t)
	p := must[*pb.Payment](t, e.svc.CreatePayment(ctx, payer, nil, service.CreatePaymentParams{Amount: 4000, Currency: "USD", MerchantID: m.ID, CaptureMethod: pb.CaptureManual}))
	amt := int64(3000)
	p = must[*pb.Payment](t, e.svc.Capture(ctx, m, nil, p.ID, &amt))
	if p.Status != pb.StatusCaptured || p.AmountCaptured != 3000 || p.FeeAmount != 75 {
		t.Fatalf("captured %+v", p)
	}
	if got := e.available(t, payer, "USD"); got != 7000 {
		t.Fatalf("payer available %d; want 7000 (the uncaptured 1000 released)", got)
	}
	if got := e.available(t, m, "USD"); got != 2925 {
		t.Fatalf("merchant available %d; want 2925", got)
	}
	one := int64(1001)
	must[*pb.Refund](t, e.svc.Refund(ctx, m, nil, p.ID, &one, "partial"))
	if r := e.svc.Refund(ctx, m, nil, p.ID, new(int64(2000)), ""); pb.ErrorCode(r.Err) != pb.ErrAmountTooLarge {
		t.Fatalf("over-refund = %v", r.Err)
	}
	must[*pb.Refund](t, e.svc.Refund(ctx, m, nil, p.ID, nil, "rest"))
	got, _ := e.svc.Payment(ctx, payer, p.ID)
	if got.Status != pb.StatusRefunded || got.AmountRefunded != 3000 {
		t.Fatalf("after full refund: %+v", got)
	}
	if e.available(t, payer, "USD") != 10_000 || e.available(t, m, "USD") != 0 {
		t.Fatalf("full refund left payer %d, merchant %d", e.available(t, payer, "USD"), e.available(t, m, "USD"))
	}
	e.verify(t)
}

func TestDeclines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 0)
	ctx := context.Background()
	payer, m := e.user(t, 1000, "USD"), e.merchant(t)
	for _, c := range []struct {
		params service.CreatePaymentParams
		code   pb.Code
	}{
		{service.CreatePaymentParams{Amount: 1001, Currency: "USD", MerchantID: m.ID}, pb.DeclineInsufficientFunds},
		{service.CreatePaymentParams{Amount: 10, Currency: "EUR", MerchantID: m.ID}, pb.DeclineCurrencyMismatch},
		{service.CreatePaymentParams{Amount: 10, Currency: "USD", MerchantID: pb.NewID(pb.PrefixMerchant, time.Now())}, pb.DeclineMerchantUnknown},
	} {
		r := e.svc.CreatePayment(ctx, payer, nil, c.params)
		var perr *pb.Error
		if pb.ErrorCode(r.Err) != c.code || !asError(r.Err, &perr) || perr.PaymentID == "" {
			t.Fatalf("%+v: %v; want %s with a payment_id", c.params, r.Err, c.code)
		}
		got, err := e.svc.Payment(ctx, payer, perr.PaymentID)
		if err != nil || got.Status != pb.StatusDeclined || got.DeclineCode != c.code {
			t.Fatalf("declined payment recorded as %+v, %v", got, err)
		}
	}
	if e.available(t, payer, "USD") != 1000 {
		t.Fatal("a decline moved money")
	}
	e.verify(t)
}

func asError(err error, target **pb.Error) bool {
	e, ok := err.(*pb.Error)
	*target = e
	return ok
}

// TestPropertyConservation runs random sequences of top-ups, payments,
// captures, cancels, refunds and expiries. After every sequence each
// currency sums to zero, no wallet is negative, the stored balances match
// the transfers, and every payment keeps refunded <= captured <= amount.
func TestPropertyConservation(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		e := newEnv(rt, t.TempDir(), rapid.Int64Range(0, 1000).Draw(rt, "fee_bps"))
		ctx := context.Background()
		curs := []string{"USD", "JPY"}
		var payers []pb.Principal
		for range 3 {
			payers = append(payers, e.user(rt, 0, ""))
		}
		m := e.merchant(rt)
		var ids []string
		pick := func(name string) string {
			if len(ids) == 0 {
				return "pay_00000000000000000000000000"
			}
			return rapid.SampledFrom(ids).Draw(rt, name)
		}
		amount := func(name string) int64 { return rapid.Int64Range(1, 5000).Draw(rt, name) }
		optAmount := func(name string) *int64 {
			if rapid.Bool().Draw(rt, name+"_all") {
				return nil
			}
			a := amount(name)
			return &a
		}
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for range steps {
			switch rapid.IntRange(0, 6).Draw(rt, "op") {
			case 0:
				p := rapid.SampledFrom(payers).Draw(rt, "payer")
				e.svc.Topup(ctx, p, nil, amount("topup"), rapid.SampledFrom(curs).Draw(rt, "cur"))
			case 1:
				p := rapid.SampledFrom(payers).Draw(rt, "payer")
				method := rapid.SampledFrom([]pb.CaptureMethod{pb.CaptureAutomatic, pb.CaptureManual}).Draw(rt, "method")
				r := e.svc.CreatePayment(ctx, p, nil, service.CreatePaymentParams{Amount: amount("pay"),
					Currency: rapid.SampledFrom(curs).Draw(rt, "cur"), MerchantID: m.ID, CaptureMethod: method,
					AuthorizationExpiresAt: e.clock.Now().Add(time.Duration(rapid.IntRange(1, 120).Draw(rt, "ttl_min")) * time.Minute)})
				if p, ok := r.Value.(*pb.Payment); ok {
					ids = append(ids, p.ID)
				}
			case 2:
				e.svc.Capture(ctx, m, nil, pick("capture"), optAmount("capture"))
			case 3:
				e.svc.Cancel(ctx, m, nil, pick("cancel"))
			case 4:
				e.svc.Refund(ctx, m, nil, pick("refund"), optAmount("refund"), "")
			case 5:
				e.clock.Advance(time.Duration(rapid.IntRange(1, 90).Draw(rt, "advance_min")) * time.Minute)
			case 6:
				if _, err := e.svc.Sweep(ctx); err != nil {
					rt.Fatal(err)
				}
			}
		}
		e.verify(rt)
		for _, p := range payers {
			bs, _ := e.svc.Balances(ctx, p)
			for _, b := range bs {
				if b.Available < 0 {
					rt.Fatalf("wallet %s is negative: %+v", p.ID, b)
				}
			}
		}
		list, _, err := e.svc.ListPayments(ctx, operator, "", 100)
		if err != nil {
			rt.Fatal(err)
		}
		for _, p := range list {
			if p.AmountRefunded < 0 || p.AmountRefunded > p.AmountCaptured || p.AmountCaptured > p.Amount {
				rt.Fatalf("payment %s breaks refunded <= captured <= amount: %+v", p.ID, p)
			}
			if p.FeeRefunded > p.FeeAmount || (p.Status == pb.StatusRefunded && p.FeeRefunded != p.FeeAmount) {
				rt.Fatalf("payment %s fee refunds are wrong: %+v", p.ID, p)
			}
		}
	})
}

// TestIdempotencyInFlight: a second request with a key whose first request
// is still running is refused with idempotency_in_flight and runs nothing.
func TestIdempotencyReplayAndConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 0)
	ctx := context.Background()
	payer, m := e.user(t, 1000, "USD"), e.merchant(t)
	render := func(v any, err error) (int, []byte) {
		if err != nil {
			return 402, []byte(err.Error())
		}
		return 201, []byte(v.(*pb.Payment).ID)
	}
	idem := func(hash byte) *service.Idempotency {
		return &service.Idempotency{Caller: payer.ID, Key: "k1", Hash: [32]byte{hash}, Render: render}
	}
	params := service.CreatePaymentParams{Amount: 600, Currency: "USD", MerchantID: m.ID}
	first := idem(1)
	r := e.svc.CreatePayment(ctx, payer, first, params)
	if r.Err != nil || r.Replayed || first.Status != 201 {
		t.Fatalf("first: %+v %d", r, first.Status)
	}
	again := idem(1)
	r = e.svc.CreatePayment(ctx, payer, again, params)
	if !r.Replayed || string(again.Body) != string(first.Body) || again.Status != 201 {
		t.Fatalf("retry: %+v %d %s", r, again.Status, again.Body)
	}
	other := idem(2)
	if r = e.svc.CreatePayment(ctx, payer, other, params); pb.ErrorCode(r.Err) != pb.ErrIdempotencyConflict {
		t.Fatalf("other body: %v", r.Err)
	}
	// A decline is stored too: after a top-up the same key still declines.
	d := &service.Idempotency{Caller: payer.ID, Key: "k2", Hash: [32]byte{3}, Render: render}
	if r = e.svc.CreatePayment(ctx, payer, d, params); pb.ErrorCode(r.Err) != pb.DeclineInsufficientFunds {
		t.Fatalf("decline: %v", r.Err)
	}
	must[*pb.Topup](t, e.svc.Topup(ctx, payer, nil, 10_000, "USD"))
	d2 := &service.Idempotency{Caller: payer.ID, Key: "k2", Hash: [32]byte{3}, Render: render}
	if r = e.svc.CreatePayment(ctx, payer, d2, params); !r.Replayed || d2.Status != 402 {
		t.Fatalf("retry of a decline: %+v %d", r, d2.Status)
	}
	// Keys are per caller: another user may use k1.
	other2 := e.user(t, 1000, "USD")
	o := &service.Idempotency{Caller: other2.ID, Key: "k1", Hash: [32]byte{1}, Render: render}
	if r = e.svc.CreatePayment(ctx, other2, o, params); r.Err != nil || r.Replayed {
		t.Fatalf("another caller's k1: %+v", r)
	}
	list, _, _ := e.svc.ListPayments(ctx, payer, "", 100)
	if len(list) != 2 {
		t.Fatalf("payer has %d payments; want 2 (one paid, one declined)", len(list))
	}
}

// TestIdempotencyConcurrent fires the same request 20 times at once: one
// runs, the others get 409 in-flight or the stored response; one payment.
func TestIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), 0)
	ctx := context.Background()
	payer, m := e.user(t, 100_000, "USD"), e.merchant(t)
	render := func(v any, err error) (int, []byte) {
		if err != nil {
			return 402, []byte(err.Error())
		}
		return 201, []byte(v.(*pb.Payment).ID)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	bodies := map[string]int{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idem := &service.Idempotency{Caller: payer.ID, Key: "same", Hash: [32]byte{9}, Render: render}
			r := e.svc.CreatePayment(ctx, payer, idem, service.CreatePaymentParams{Amount: 100, Currency: "USD", MerchantID: m.ID})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case pb.ErrorCode(r.Err) == pb.ErrIdempotencyRunning:
				bodies["409"]++
			case r.Err == nil:
				bodies[string(idem.Body)]++
			default:
				t.Errorf("unexpected %v", r.Err)
			}
		}()
	}
	wg.Wait()
	delete(bodies, "409")
	if len(bodies) != 1 {
		t.Fatalf("distinct responses %v; want one payment ID", bodies)
	}
	if got := e.available(t, payer, "USD"); got != 100_000-100 {
		t.Fatalf("available %d; the payment ran more than once", got)
	}
}
