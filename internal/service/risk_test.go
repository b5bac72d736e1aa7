package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
)

// BenchmarkRiskAssess is risk control's in-process cost on one payment
// attempt, as CreatePayment runs it before the writer: the payer's recent
// payments (a full book of pb.MaxRecentPayments, in memory after the
// first attempt), the wallet's balance from the store, the built-in
// signals, 20 operator rules (none matching: all run), and the recorded
// input. It reports the p99 of single assessments; "cold" reads the
// payer's book from the store first, as the first attempt after a start.
func BenchmarkRiskAssess(b *testing.B) {
	ctx := context.Background()
	w := newMandateWorld(b)
	if r := w.svc.Topup(ctx, w.user, nil, 100_000_000, "CNY"); r.Err != nil {
		b.Fatal(r.Err)
	}
	mandate := w.grant(b, pb.Mandate{MaxAmount: 100_000, Budget: pb.Budget{Amount: 1_000_000_000, Period: pb.PeriodMonth}})
	for i := range pb.MaxRecentPayments {
		merchant := w.cafe.ID
		if i%3 == 0 {
			merchant = w.books.ID
		}
		if _, err := w.pay(w.agent, mandate, merchant, 1500+int64(i%7)*100, "CNY"); err != nil {
			b.Fatal(err)
		}
		w.clock.Advance(4 * time.Hour)
	}
	for i := range 20 {
		if _, err := w.svc.PutRiskRule(ctx, operator, fmt.Sprintf("rule %02d", i),
			fmt.Sprintf(`payment.amount > %d && merchant.category != "casino" && !("untrusted_payee" in risk.signals) && agent.assurance == "signed"`, 1000*i),
			[]pb.RiskDecision{pb.RiskBlock, pb.RiskReview, pb.RiskAllow}[i%3], i); err != nil {
			b.Fatal(err)
		}
	}
	params := service.CreatePaymentParams{Amount: 1800, Currency: "CNY", MerchantID: w.cafe.ID, MandateID: mandate}
	if r, err := w.svc.Assess(ctx, w.agent, params); err != nil || r.Decision != pb.RiskAllow {
		b.Fatalf("assessment: %+v, %v", r, err)
	}
	for _, cold := range []bool{false, true} {
		// cold: the payer's book is read from the store first, as on the
		// payer's first attempt after a start.
		b.Run(map[bool]string{false: "warm", true: "cold"}[cold], func(b *testing.B) {
			lat := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				if cold {
					w.svc.DropRiskBooks()
				}
				t0 := time.Now()
				if _, err := w.svc.Assess(ctx, w.agent, params); err != nil {
					b.Fatal(err)
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
			}
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
			}
		})
	}
}

// TestParseRiskConfig: a risk configuration is one JSON object of known
// fields in range; anything else is refused with what is wrong.
func TestParseRiskConfig(t *testing.T) {
	c, err := service.ParseRiskConfig([]byte(`{"review_at": 50, "per_minute": 20}`))
	if err != nil || c.ReviewAt != 50 || c.PerMinute != 20 || c.BlockAt != 80 {
		t.Fatalf("a partial config: %+v, %v", c, err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"review_at": 50} {"block_at": 1}`, `{"review_at": 50} x`, `{"review_at": 50`,
		`{"reveiw_at": 50}`, `{"review_at": 0}`, `{"review_at": 90, "block_at": 80}`, `{"block_at": 102}`,
		`{"amount_outlier_ratio": 9000000000000000000}`, `{"amount_outlier_mads": 0}`, `{"drain_percent": 101}`,
		`{"large_new_payee": -1}`, `{"per_minute": 0}`, `{"per_day": 2000000000000}`, `{"min_history": 201}`,
		`{"new_merchant_hours": -1}`, `{"review_at": "50"}`,
	} {
		if c, err := service.ParseRiskConfig([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "risk config:") {
			t.Errorf("ParseRiskConfig(%q) = %+v, %v; want a risk config error", bad, c, err)
		}
	}
}

// TestRiskBalance: the balance risk control sees follows the wallet
// through payments, holds and a cancel, though it is read from the store
// at most once a second.
func TestRiskBalance(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), 0)
	user := e.user(t, 10_000, "CNY") // small payments: risk control allows them
	m := must[*service.NewMerchant](t, e.svc.CreateMerchant(ctx, operator, nil, "shop", "general"))
	merchant := pb.Principal{Role: pb.RoleMerchant, ID: m.ID}
	available := func() int64 {
		t.Helper()
		r, err := e.svc.Assess(ctx, user, service.CreatePaymentParams{Amount: 100, Currency: "CNY", MerchantID: m.ID})
		if err != nil {
			t.Fatal(err)
		}
		var in struct{ Available int64 }
		if err := json.Unmarshal(r.Input, &in); err != nil {
			t.Fatal(err)
		}
		return in.Available
	}
	pay := func(amount int64, capture pb.CaptureMethod) *pb.Payment {
		t.Helper()
		p := must[*pb.Payment](t, e.svc.CreatePayment(ctx, user, nil, service.CreatePaymentParams{Amount: amount, Currency: "CNY",
			MerchantID: m.ID, CaptureMethod: capture}))
		if p.Status == pb.StatusRequiresConfirmation {
			t.Fatalf("payment of %d reviewed: %+v", amount, p.Risk)
		}
		return p
	}
	steps := []struct {
		what string
		do   func()
		want int64
	}{
		{"funded", func() {}, 10_000},
		{"paid 6,000", func() { pay(6_000, pb.CaptureAutomatic) }, 4_000},
		{"held 1,000", func() { pay(1_000, pb.CaptureManual) }, 3_000},
		{"the hold canceled", func() {
			p := pay(500, pb.CaptureManual)
			must[*pb.Payment](t, e.svc.Cancel(ctx, merchant, nil, p.ID))
		}, 3_000},
	}
	for _, st := range steps {
		st.do()
		if got := available(); got != st.want {
			t.Fatalf("%s: risk sees %d available, want %d", st.what, got, st.want)
		}
	}
}
