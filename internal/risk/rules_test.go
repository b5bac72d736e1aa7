package risk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paybound/paybound/internal/policy"
)

func riskVars() *policy.RiskVars {
	return &policy.RiskVars{Vars: policy.Vars{Amount: 250_000, Currency: "CNY", MerchantID: "mch_1", AgentID: "agt_1",
		Category: "electronics", UserID: "usr_1", Now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)},
		Assurance: AssuranceSigned, Available: 2_000_000, MerchantAgeHours: 40_000}
}

func TestNewRuleRefuses(t *testing.T) {
	for _, c := range []struct {
		name, expr string
		action     Decision
		priority   int
		want       string
	}{
		{"", "true", Block, 1, "name"},
		{strings.Repeat("n", MaxRuleName+1), "true", Block, 1, "name"},
		{"r", "true", "deny", 1, "action"},
		{"r", "true", Block, -1, "priority"},
		{"r", "true", Block, MaxPriority + 1, "priority"},
		{"r", "payment.amount", Block, 1, "true or false"},
		{"r", "payment.nope > 1", Block, 1, "undeclared"},
		{"r", "", Block, 1, "1 to"},
	} {
		_, err := NewRule(c.name, c.expr, c.action, c.priority)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewRule(%q, %q, %q, %d) = %v, want an error about %q", c.name, c.expr, c.action, c.priority, err, c.want)
		}
	}
	if _, err := NewRule("r", "payment.amount", Block, 1); !errors.Is(err, policy.ErrInvalid) {
		t.Errorf("a non-bool expression: %v, want policy.ErrInvalid", err)
	}
}

func mustRule(t testing.TB, name, expr string, action Decision, priority int) *Rule {
	t.Helper()
	r, err := NewRule(name, expr, action, priority)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestApplyOrder: ascending priority, then block before review before
// allow; the first match is the last rule run: allow overrides, review and
// block only raise; a rule that cannot be evaluated does not match.
func TestApplyOrder(t *testing.T) {
	ctx := context.Background()
	builtIn := Assessment{Decision: Review, Score: 60, Signals: []Signal{{Name: "new_payee_large_amount", Points: 35}}}
	rules := []*Rule{
		mustRule(t, "trusted electronics", `merchant.category == "electronics" && agent.assurance == "signed"`, Allow, 10),
		mustRule(t, "huge", `payment.amount > 1000000`, Block, 10),
		mustRule(t, "new payee and big", `"new_payee_large_amount" in risk.signals && risk.score >= 50`, Review, 5),
		mustRule(t, "broken", `payment.metadata["order"] == "x"`, Block, 1), // the key is missing: an error
	}
	Sort(rules)
	var order []string
	for _, r := range rules {
		order = append(order, r.Name)
	}
	if want := []string{"broken", "new payee and big", "huge", "trusted electronics"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	// The review rule matches first: the built-in decision is already
	// review, so it stands, and the later allow rule does not run.
	a, errs := Apply(ctx, rules, riskVars(), builtIn)
	if a.Decision != Review || a.Rule != "" || len(errs) != 1 {
		t.Fatalf("Apply = %+v, %v", a, errs)
	}
	// Over a built-in allow, the review rule raises the decision.
	lowAllow := builtIn
	lowAllow.Decision = Allow
	if a, _ = Apply(ctx, rules, riskVars(), lowAllow); a.Decision != Review || a.Rule != "new payee and big" {
		t.Fatalf("review rule over allow: %+v", a)
	}
	// A review rule never lowers the score's block.
	blocked := builtIn
	blocked.Decision = Block
	if a, _ = Apply(ctx, rules, riskVars(), blocked); a.Decision != Block || a.Rule != "" {
		t.Fatalf("review rule over block: %+v", a)
	}
	// Without the review rule, the allow rule overrides the built-in review.
	a, _ = Apply(ctx, []*Rule{rules[2], rules[3]}, riskVars(), builtIn)
	if a.Decision != Allow || a.Rule != "trusted electronics" {
		t.Fatalf("allow rule: %+v", a)
	}
	// Nothing matches: the built-in decision stands.
	v := riskVars()
	v.Category = "books"
	a, _ = Apply(ctx, []*Rule{rules[3]}, v, builtIn)
	if a.Decision != Review || a.Rule != "" {
		t.Fatalf("no match: %+v", a)
	}
}

// BenchmarkEvaluateWithRules: the built-in signals plus 20 operator rules,
// none matching (the worst case: all run), with the per-evaluation p99.
func BenchmarkEvaluateWithRules(b *testing.B) {
	ctx := context.Background()
	cfg := Defaults()
	in := Input{Amount: 1800, Currency: "CNY", MerchantID: "mch_1", Category: "food", UserID: "usr_1", AgentID: "agt_1",
		MandateID: "mdt_1", Assurance: AssuranceSigned, Now: time.Now(),
		MerchantHistory: breakfasts(), CategoryHistory: breakfasts(), MandateHistory: breakfasts(), PaidMerchantBefore: true,
		Available: 500_000, MerchantAgeHours: 5000}
	var rules []*Rule
	for i := range 20 {
		rules = append(rules, mustRule(b, fmt.Sprintf("rule %d", i),
			fmt.Sprintf(`payment.amount > %d && merchant.category != "casino" && !("untrusted_payee" in risk.signals) && agent.assurance == "bearer"`, 1000*i),
			[]Decision{Block, Review, Allow}[i%3], i))
	}
	Sort(rules)
	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		t0 := time.Now()
		Assess(ctx, &in, &cfg, rules)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
	}
}

// TestRulesSeeTheInput: what an Input carries reaches the rules, velocity
// and provenance included ("" provenance is "unknown" to a rule).
func TestRulesSeeTheInput(t *testing.T) {
	ctx := context.Background()
	cfg := Defaults()
	in := Input{Amount: 500, Currency: "CNY", MerchantID: "mch_1", Category: "food", UserID: "usr_1", AgentID: "agt_1",
		MandateID: "mdt_1", Assurance: AssuranceSigned, Now: time.Now(), PaidMerchantBefore: true, MerchantAgeHours: 100,
		AgentVelocity: Velocity{Minute: Window{Count: 3, Sum: 1500}, Day: Window{Count: 9, Sum: 4000}}, DeclinesLastHour: 2}
	for _, c := range []struct {
		expr string
		want Decision
	}{
		{`velocity.agent.minute.count >= 3 && velocity.agent.day.sum > 3000`, Review},
		{`velocity.declines_last_hour == 2`, Review},
		{`payment.payee_provenance == "unknown" && payment.mandate_id == "mdt_1"`, Review},
		{`velocity.mandate.day.count > 0`, Allow},
	} {
		a, errs := Assess(ctx, &in, &cfg, []*Rule{mustRule(t, "r", c.expr, Review, 1)})
		if a.Decision != c.want || len(errs) != 0 {
			t.Errorf("%s: %+v %v; want %s", c.expr, a, errs, c.want)
		}
	}
}
