package settlement_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/settlement"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/storetest"
	"github.com/paybound/paybound/internal/tlog"
	"github.com/paybound/paybound/internal/translog"
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

// world is the real payments core, disputes and the report over one store,
// shared by a property's runs: each run has merchants and payers of its own.
type world struct {
	st      pb.Store
	clock   *clock
	svc     *service.Service
	disp    *disputes.Service
	reports *settlement.Service
}

var operator = pb.Principal{Role: pb.RoleOperator, ID: "operator"}

func newWorld(t testing.TB, feeBPS int64) *world {
	ctx := context.Background()
	var st pb.Store
	var err error
	if storetest.UsePostgres() {
		st, err = postgres.Open(ctx, storetest.PostgresURL(t))
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "paybound.db"))
	}
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
		FeeBPS: feeBPS, Sandbox: true, Mandates: mandates.NewPolicy(), Risk: rc})
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
	t.Cleanup(func() { svc.Close(); led.Close(); st.Close() })
	return &world{st: st, clock: c, svc: svc, disp: disputes.New(svc, log, st), reports: settlement.New(st, settlement.Config{})}
}

func must[T any](t rapid.TB, r service.Result) T {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("unexpected error: %v", r.Err)
	}
	return r.Value.(T)
}

// posted is the merchant's posted balance per currency, as committed.
func (w *world) posted(t rapid.TB, merchant string) map[string]int64 {
	accts, err := w.st.AccountsByOwner(context.Background(), merchant)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, a := range accts {
		out[a.Currency] = a.CreditsPosted - a.DebitsPosted
	}
	return out
}

// seen counts, over every run, the kinds of rows the histories made, so
// that the property is known to have covered each.
type seen struct {
	mu    sync.Mutex
	types map[string]int
}

// TestPropertyReportEqualsLedger: on random histories (payments captured
// at once or in part later, canceled holds, refunds in part, disputes
// resolved by the merchant's refund or the platform's compensation, in two
// currencies, with a fee), the report of any period sums, per currency,
// to the change of the merchant's ledger balance over that period; its
// running balance ends at that sum; its CSV holds the same rows.
func TestPropertyReportEqualsLedger(t *testing.T) {
	w := newWorld(t, 290) // 2.9%: fees with remainders, returned in proportion
	ctx := context.Background()
	cover := &seen{types: map[string]int{}}
	rapid.Check(t, func(rt *rapid.T) {
		mr := must[*service.NewMerchant](rt, w.svc.CreateMerchant(ctx, operator, nil, "shop", "food"))
		merchant := pb.Principal{Role: pb.RoleMerchant, ID: mr.ID}
		var payers []pb.Principal
		for range 3 {
			u := must[*service.NewUser](rt, w.svc.CreateUser(ctx, operator, nil, "payer"))
			p := pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
			for _, cur := range []string{"USD", "JPY"} {
				must[*pb.Topup](rt, w.svc.Topup(ctx, p, nil, 10_000_000, cur))
			}
			payers = append(payers, p)
		}
		var payments []*pb.Payment // the history's payments, as last seen
		// times[k] is step k's time; balances[k] the merchant's balance after it.
		var times []time.Time
		var balances []map[string]int64
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for range steps {
			times = append(times, w.clock.Now())
			switch op := rapid.IntRange(0, 5).Draw(rt, "op"); {
			case op <= 1 || len(payments) == 0: // pay, at once or held
				manual := rapid.Bool().Draw(rt, "manual")
				method := pb.CaptureAutomatic
				if manual {
					method = pb.CaptureManual
				}
				r := w.svc.CreatePayment(ctx, payers[rapid.IntRange(0, 2).Draw(rt, "payer")], nil, service.CreatePaymentParams{
					Amount: rapid.Int64Range(1, 50_000).Draw(rt, "amount"), Currency: rapid.SampledFrom([]string{"USD", "JPY"}).Draw(rt, "currency"),
					MerchantID: merchant.ID, CaptureMethod: method, Metadata: map[string]string{"reference": "order-" + strconv.Itoa(len(payments))}})
				if p, ok := r.Value.(*pb.Payment); ok {
					payments = append(payments, p)
				}
			case op == 2: // capture in part, or cancel
				p := payments[rapid.IntRange(0, len(payments)-1).Draw(rt, "payment")]
				if rapid.Bool().Draw(rt, "cancel") {
					r := w.svc.Cancel(ctx, merchant, nil, p.ID)
					if q, ok := r.Value.(*pb.Payment); ok {
						*p = *q
					}
					break
				}
				amt := rapid.Int64Range(1, p.Amount).Draw(rt, "capture")
				if q, ok := w.svc.Capture(ctx, merchant, nil, p.ID, &amt).Value.(*pb.Payment); ok {
					*p = *q
				}
			case op == 3 || op == 4: // refund in part
				p := payments[rapid.IntRange(0, len(payments)-1).Draw(rt, "payment")]
				amt := rapid.Int64Range(1, max(p.Amount, 1)).Draw(rt, "refund")
				w.svc.Refund(ctx, merchant, nil, p.ID, &amt, "")
			default: // a dispute, resolved by a refund or a compensation
				p := payments[rapid.IntRange(0, len(payments)-1).Draw(rt, "payment")]
				payer := pb.Principal{Role: pb.RoleUser, ID: p.PayerID, UserID: p.PayerID}
				d, ok := w.disp.Open(ctx, payer, nil, p.ID, pb.ReasonMerchantError, "").Value.(*pb.Dispute)
				if !ok {
					break
				}
				liable := rapid.SampledFrom([]string{pb.LiableMerchant, pb.LiablePlatform}).Draw(rt, "liable")
				w.disp.Resolve(ctx, operator, nil, d.ID, disputes.ResolveParams{Outcome: pb.OutcomeRefundFull, LiableParty: liable})
			}
			balances = append(balances, w.posted(rt, merchant.ID))
			w.clock.Advance(time.Duration(rapid.Int64Range(1, int64(20*time.Minute/time.Millisecond)).Draw(rt, "wait")) * time.Millisecond)
		}
		times = append(times, w.clock.Now())
		// A period [times[a], times[b]) holds steps a to b-1.
		a := rapid.IntRange(0, steps-1).Draw(rt, "from")
		b := rapid.IntRange(a+1, steps).Draw(rt, "to")
		before := map[string]int64{}
		if a > 0 {
			before = balances[a-1]
		}
		after := balances[b-1]
		rep, err := w.reports.Report(ctx, merchant, times[a], times[b])
		if err != nil {
			rt.Fatal(err)
		}
		net := map[string]int64{}
		for _, sm := range rep.Summary {
			net[sm.Currency] = sm.Net
			if sum := sm.Captures + sm.Fees + sm.Refunds + sm.Adjustments; sum != sm.Net {
				rt.Fatalf("%s: captures %d + fees %d + refunds %d + adjustments %d = %d, net %d", sm.Currency, sm.Captures, sm.Fees, sm.Refunds, sm.Adjustments, sum, sm.Net)
			}
		}
		for _, cur := range []string{"USD", "JPY"} {
			if want := after[cur] - before[cur]; net[cur] != want {
				rt.Fatalf("%s: the report's net over [%v, %v) is %d; the merchant's balance moved by %d (%d to %d)\n%+v",
					cur, times[a], times[b], net[cur], want, before[cur], after[cur], rep.Rows)
			}
		}
		last := map[string]int64{}
		for i, r := range rep.Rows {
			if r.CreatedAt.Before(times[a]) || !r.CreatedAt.Before(times[b]) || (i > 0 && r.CreatedAt.Before(rep.Rows[i-1].CreatedAt)) {
				rt.Fatalf("row %d at %v: outside [%v, %v) or out of order", i, r.CreatedAt, times[a], times[b])
			}
			last[r.Currency] += r.Amount
			if r.Balance != last[r.Currency] {
				rt.Fatalf("row %d's running balance is %d, the rows so far sum to %d", i, r.Balance, last[r.Currency])
			}
			if r.PaymentID == "" || (r.Type == pb.SettlementAdjustment) {
				rt.Fatalf("row %d has no payment or no known type: %+v", i, r)
			}
		}
		b2, err := settlement.CSV(rep)
		if err != nil {
			rt.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b2)).ReadAll()
		if err != nil || len(recs) != len(rep.Rows)+1 {
			rt.Fatalf("CSV: %d records, %v; want a header and %d rows", len(recs), err, len(rep.Rows))
		}
		for i, r := range rep.Rows {
			if recs[i+1][3] != strconv.FormatInt(r.Amount, 10) || recs[i+1][2] != r.Currency {
				rt.Fatalf("CSV row %d: %v, want %+v", i, recs[i+1], r)
			}
		}
		cover.mu.Lock()
		for _, r := range rep.Rows {
			cover.types[r.Type]++
		}
		cover.mu.Unlock()
	})
	for _, k := range []string{pb.SettlementCapture, pb.SettlementFee, pb.SettlementRefund, pb.SettlementDisputeRefund} {
		if cover.types[k] == 0 {
			t.Errorf("no history made a %s row: %v", k, cover.types)
		}
	}
	t.Logf("rows by type over every run: %v", cover.types)
}

// TestReportRefusals: each bad request gets its code and field.
func TestReportRefusals(t *testing.T) {
	w := newWorld(t, 0)
	ctx := context.Background()
	mr := must[*service.NewMerchant](t, w.svc.CreateMerchant(ctx, operator, nil, "shop", "food"))
	merchant := pb.Principal{Role: pb.RoleMerchant, ID: mr.ID}
	u := must[*service.NewUser](t, w.svc.CreateUser(ctx, operator, nil, "payer"))
	user := pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
	must[*pb.Topup](t, w.svc.Topup(ctx, user, nil, 10_000, "USD"))
	for range 3 {
		must[*pb.Payment](t, w.svc.CreatePayment(ctx, user, nil, service.CreatePaymentParams{Amount: 100, Currency: "USD", MerchantID: mr.ID}))
		w.clock.Advance(time.Second)
	}
	t0 := w.clock.Now().Add(-time.Hour)
	for _, c := range []struct {
		caller   pb.Principal
		from, to time.Time
		code     pb.Code
		param    string
	}{
		{user, t0, t0.Add(time.Hour), pb.ErrForbidden, ""},
		{merchant, time.Time{}, t0, pb.ErrParameterMissing, "from"},
		{merchant, t0, time.Time{}, pb.ErrParameterMissing, "to"},
		{merchant, t0, t0, pb.ErrParameterInvalid, "to"},
		{merchant, t0, t0.Add(-time.Second), pb.ErrParameterInvalid, "to"},
		{merchant, t0, t0.Add(settlement.MaxSpan + time.Second), pb.ErrParameterInvalid, "to"},
	} {
		_, err := w.reports.Report(ctx, c.caller, c.from, c.to)
		var e *pb.Error
		if pb.ErrorCode(err) != c.code || (errors.As(err, &e) && e.Param != c.param) {
			t.Errorf("Report(%v, %v, %v) = %v, want %s on %q", c.caller.Role, c.from, c.to, err, c.code, c.param)
		}
	}
	if rep, err := w.reports.Report(ctx, merchant, t0, t0.Add(2*time.Hour)); err != nil || len(rep.Rows) != 3 || rep.Summary[0].Net != 300 {
		t.Fatalf("the report: %+v, %v", rep, err)
	}
	// A period of more movements than a report holds is refused whole.
	small := settlement.New(w.st, settlement.Config{MaxRows: 2})
	if _, err := small.Report(ctx, merchant, t0, t0.Add(2*time.Hour)); pb.ErrorCode(err) != pb.ErrReportTooLarge {
		t.Fatalf("a report over MaxRows: %v", err)
	}
}

// BenchmarkReport5000: a report of the most movements one holds (2500
// captures and their fees), on SQLite.
func BenchmarkReport5000(b *testing.B) {
	w := newWorld(b, 100)
	ctx := context.Background()
	mr := must[*service.NewMerchant](b, w.svc.CreateMerchant(ctx, operator, nil, "shop", "food"))
	merchant := pb.Principal{Role: pb.RoleMerchant, ID: mr.ID}
	from := w.clock.Now()
	var wg sync.WaitGroup
	for g := range 25 {
		u := must[*service.NewUser](b, w.svc.CreateUser(ctx, operator, nil, "payer"))
		p := pb.Principal{Role: pb.RoleUser, ID: u.ID, UserID: u.ID}
		must[*pb.Topup](b, w.svc.Topup(ctx, p, nil, 100_000_000, "USD"))
		wg.Go(func() {
			for i := range 100 {
				r := w.svc.CreatePayment(ctx, p, nil, service.CreatePaymentParams{Amount: int64(1000 + g*100 + i), Currency: "USD", MerchantID: mr.ID})
				if r.Err != nil {
					b.Error(r.Err)
					return
				}
			}
		})
	}
	wg.Wait()
	to := w.clock.Now().Add(time.Second)
	b.ResetTimer()
	for range b.N {
		rep, err := w.reports.Report(ctx, merchant, from, to)
		if err != nil || len(rep.Rows) != 5000 {
			b.Fatalf("%v, %d rows", err, len(rep.Rows))
		}
	}
}
