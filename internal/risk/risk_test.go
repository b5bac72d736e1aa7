package risk

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func names(a Assessment) []string {
	var out []string
	for _, s := range a.Signals {
		out = append(out, s.Name)
	}
	return out
}

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		xs       []int64
		med, mad int64
	}{
		{nil, 0, 0},
		{[]int64{5}, 5, 0},
		{[]int64{3, 1, 2}, 2, 1},
		{[]int64{1, 2, 3, 4}, 2, 1},
		{[]int64{10, 10, 10, 10, 1_000_000}, 10, 0}, // one outlier moves neither
		{[]int64{1, 1, 2, 2, 4, 6, 9}, 2, 1},
	} {
		in := slices.Clone(c.xs)
		h := Summarize(c.xs)
		if h != (History{Count: len(c.xs), Median: c.med, MAD: c.mad}) || !slices.Equal(in, c.xs) {
			t.Errorf("Summarize(%v) = %+v, want median %d, MAD %d", c.xs, h, c.med, c.mad)
		}
	}
	// Against sorting, on random amounts with many ties.
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= MaxHistory; n++ {
		xs := make([]int64, n)
		for i := range xs {
			xs[i] = rng.Int64N(int64(n/3 + 1))
		}
		s := slices.Sorted(slices.Values(xs))
		med := s[(n-1)/2]
		d := make([]int64, n)
		for i, x := range xs {
			d[i] = max(x-med, med-x)
		}
		slices.Sort(d)
		if h := Summarize(xs); h != (History{Count: n, Median: med, MAD: d[(n-1)/2]}) {
			t.Fatalf("Summarize(%v) = %+v, want median %d, MAD %d", xs, h, med, d[(n-1)/2])
		}
	}
	long := make([]int64, 3*MaxHistory)
	for i := range long {
		long[i] = int64(i)
	}
	if h := Summarize(long); h.Count != MaxHistory || h.Median != MaxHistory/2-1 {
		t.Errorf("Summarize of %d amounts = %+v, want the first %d", len(long), h, MaxHistory)
	}
	if n := testing.AllocsPerRun(10, func() { Summarize(long) }); n != 0 {
		t.Errorf("Summarize allocates %v times", n)
	}
}

// breakfasts is months of small payments at one café.
func breakfasts() History {
	var h []int64
	for i := range 90 {
		h = append(h, 1500+int64(i%7)*100) // 15.00–21.00
	}
	return Summarize(h)
}

// TestScenarios: the scenarios, each with the decision and the
// signals that explain it.
func TestScenarios(t *testing.T) {
	cfg := Defaults()
	for _, c := range []struct {
		name     string
		in       Input
		decision Decision
		signals  []string
	}{
		{"breakfast as usual", Input{Amount: 1800, AgentID: "agt_1", MandateID: "mdt_1", Assurance: AssuranceSigned,
			MerchantHistory: breakfasts(), CategoryHistory: breakfasts(), MandateHistory: breakfasts(), PaidMerchantBefore: true,
			Available: 500_000, MerchantAgeHours: 5000}, Allow, nil},
		{"tipping agent pays a stranger 100,000", Input{Amount: 10_000_000, AgentID: "agt_1", MandateID: "mdt_tip", Assurance: AssuranceSigned,
			MandateHistory: Summarize([]int64{200, 300, 500, 200, 300, 200}), CategoryHistory: Summarize([]int64{200, 300, 500, 200, 300, 200}),
			Available: 11_000_000, MerchantAgeHours: 2, PayeeProvenance: ProvenanceUntrusted}, Block,
			[]string{"amount_vs_category_history", "amount_vs_mandate_history", "new_payee_large_amount", "drains_wallet", "new_merchant", "untrusted_payee"}},
		{"card-testing burst", Input{Amount: 100, AgentID: "agt_2", Assurance: AssuranceBearer, Available: 100_000, MerchantAgeHours: 3,
			AgentVelocity: Velocity{Minute: Window{Count: 25, Sum: 2500}}, PayeeVelocity: Velocity{Minute: Window{Count: 25}},
			DeclinesLastHour: 9}, Block,
			[]string{"new_payee", "velocity_agent", "velocity_payee", "decline_burst", "bearer_agent", "new_merchant"}},
		{"agent loop, one merchant every second", Input{Amount: 1800, AgentID: "agt_3", MandateID: "mdt_3", Assurance: AssuranceSigned,
			MerchantHistory: breakfasts(), PaidMerchantBefore: true, Available: 500_000, MerchantAgeHours: 5000,
			AgentVelocity: Velocity{Minute: Window{Count: 60}}, MandateVelocity: Velocity{Minute: Window{Count: 60}},
			PayeeVelocity: Velocity{Minute: Window{Count: 60}}}, Block,
			[]string{"velocity_agent", "velocity_mandate", "velocity_payee"}},
		{"legitimate large first purchase", Input{Amount: 250_000, AgentID: "agt_1", MandateID: "mdt_1", Assurance: AssuranceSigned,
			CategoryHistory: breakfasts(), Available: 2_000_000, MerchantAgeHours: 40_000}, Review,
			[]string{"amount_vs_category_history", "new_payee_large_amount"}},
		{"the user's own large payment is reviewed, not blocked", Input{Amount: 900_000, Assurance: AssuranceUser,
			Available: 1_000_000, MerchantAgeHours: 1, MerchantFlags: []string{"suspected_fraud"}}, Review,
			[]string{"new_payee_large_amount", "drains_wallet", "merchant_flagged", "new_merchant"}},
	} {
		a := Evaluate(&c.in, &cfg)
		if a.Decision != c.decision || !slices.Equal(names(a), c.signals) {
			t.Errorf("%s: %s at %d by %v; want %s by %v", c.name, a.Decision, a.Score, names(a), c.decision, c.signals)
		}
		if a.Score < 0 || a.Score > 100 {
			t.Errorf("%s: score %d", c.name, a.Score)
		}
		for _, s := range a.Signals {
			if s.Reason == "" || s.Points <= 0 {
				t.Errorf("%s: signal %+v lacks a reason or points", c.name, s)
			}
		}
	}
}

// TestThresholdsTune: the operator's thresholds change the outcome.
func TestThresholdsTune(t *testing.T) {
	in := Input{Amount: 250_000, AgentID: "agt_1", Assurance: AssuranceSigned, CategoryHistory: breakfasts(),
		Available: 2_000_000, MerchantAgeHours: 40_000}
	cfg := Defaults()
	if a := Evaluate(&in, &cfg); a.Decision != Review {
		t.Fatalf("default: %+v", a)
	}
	cfg.ReviewAt = 70
	if a := Evaluate(&in, &cfg); a.Decision != Allow {
		t.Fatalf("review at 70: %+v", a)
	}
	cfg.LargeNewPayee = 1_000_000
	if a := Evaluate(&in, &cfg); slices.Contains(names(a), "new_payee_large_amount") {
		t.Fatalf("large new payee at 1,000,000: %+v", a)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	cfg := Defaults()
	in := Input{Amount: 1800, AgentID: "agt_1", MandateID: "mdt_1", Assurance: AssuranceSigned,
		MerchantHistory: breakfasts(), CategoryHistory: breakfasts(), MandateHistory: breakfasts(), PaidMerchantBefore: true,
		Available: 500_000, MerchantAgeHours: 5000}
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(&in, &cfg)
	}
}

// TestNoOverflow: amounts up to paybound.MaxAmount and thresholds at their
// limits compare exactly, not wrapped.
func TestNoOverflow(t *testing.T) {
	cfg := Defaults()
	cfg.AmountOutlierRatio, cfg.AmountOutlierMADs = 1000, 1000
	huge := int64(1_000_000_000_000_000_000)
	in := Input{Amount: huge / 10, AgentID: "agt_1", Available: huge / 10, PaidMerchantBefore: true, MerchantAgeHours: 1000,
		MerchantHistory: History{Count: 10, Median: huge / 10}}
	if a := Evaluate(&in, &cfg); !slices.Contains(names(a), "drains_wallet") || slices.Contains(names(a), "amount_vs_merchant_history") {
		t.Errorf("an amount equal to a huge balance and to the median: %v", names(a))
	}
	in.MerchantHistory = History{Count: 10, Median: huge / 100, MAD: huge / 100}
	if a := Evaluate(&in, &cfg); slices.Contains(names(a), "amount_vs_merchant_history") {
		t.Errorf("10 MADs above the median, with 1000 MADs allowed: %v", names(a))
	}
	for _, c := range []struct {
		a, b, c, d int64
		want       bool
	}{
		{huge, 100, huge, 80, true}, {huge, 80, huge, 100, false}, {huge, 1000, huge, 1000, false}, {3, 2, 5, 1, true}, {0, 5, 0, 7, false},
	} {
		if got := productGreater(c.a, c.b, c.c, c.d); got != c.want {
			t.Errorf("productGreater(%d, %d, %d, %d) = %v", c.a, c.b, c.c, c.d, got)
		}
	}
}
