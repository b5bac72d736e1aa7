package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func vars() Vars {
	return Vars{Amount: 2500, Currency: "CNY", MerchantID: "mch_1", AgentID: "agt_1", Description: "breakfast",
		Metadata: map[string]string{"order": "42"}, Category: "food_and_drink", MerchantNm: "Cafe", UserID: "usr_1",
		Now: time.Date(2026, 11, 25, 0, 30, 0, 0, time.UTC)} // 08:30 in Shanghai
}

func TestEval(t *testing.T) {
	ctx := context.Background()
	for src, want := range map[string]bool{
		`payment.amount <= 3000`: true,
		`payment.amount > 3000`:  false,
		`payment.currency == "CNY" && merchant.category == "food_and_drink"`: true,
		`now.getHours("Asia/Shanghai") < 10`:                                 true,
		`now.getHours() < 1`:                                                 true,
		`payment.metadata["order"] == "42"`:                                  true,
		`"order" in payment.metadata && size(payment.description) < 100`:     true,
		`payment.description.contains("lunch")`:                              false,
		`user.id.startsWith("usr_") && payment.agent_id == "agt_1"`:          true,
	} {
		p, err := Compile(src)
		if err != nil {
			t.Fatalf("Compile(%s): %v", src, err)
		}
		got, err := p.Eval(ctx, vars())
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", src, got, err, want)
		}
	}
	// A missing metadata key is an evaluation error, which callers treat as false.
	p, _ := Compile(`payment.metadata["nope"] == "x"`)
	if ok, err := p.Eval(ctx, vars()); err == nil || ok {
		t.Fatalf("missing key: %v %v", ok, err)
	}
}

// TestCompileRefuses: every mistake is found when the expression is saved.
func TestCompileRefuses(t *testing.T) {
	for _, src := range []string{
		``,
		strings.Repeat("1 == 1 && ", 300) + "true", // too long
		`payment.amont > 5`,                        // misspelt variable
		`payment.amount > "5"`,                     // type error
		`payment.amount + 1`,                       // not a bool
		`payment.amount >`,                         // syntax
		`payment.metadata.all(k, payment.metadata.all(j, payment.metadata.all(i, payment.description.matches(k + j + i))))`, // cost
	} {
		if _, err := Compile(src); !errors.Is(err, ErrInvalid) {
			t.Errorf("Compile(%.60q) = %v, want ErrInvalid", src, err)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`payment.amount <= 3000`, `now.getHours("UTC") < 10`, `payment.metadata["a"] == "b"`, `[1,2].exists(x, x > 1)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.Eval(ctx, vars()) // must return (true/false or an error), never hang or panic
	})
}

// BenchmarkEval is the cost of a typical mandate condition.
func BenchmarkEval(b *testing.B) {
	p, err := Compile(`payment.amount <= 3000 && merchant.category == "food_and_drink" && now.getHours("Asia/Shanghai") < 10`)
	if err != nil {
		b.Fatal(err)
	}
	v := vars()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Eval(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRiskVariablesResolve: every variable a risk rule may name is served
// by the activation (one it forgot would make every rule naming it fail,
// and so never match), with the value given.
func TestRiskVariablesResolve(t *testing.T) {
	v := &RiskVars{Vars: Vars{Amount: 1234, Currency: "CNY", MerchantID: "mch_1", AgentID: "agt_1", Description: "d",
		Metadata: map[string]string{"k": "v"}, Category: "food", MerchantNm: "cafe", UserID: "usr_1",
		Now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)},
		MandateID: "mdt_1", PayeeProvenance: "untrusted", AmountProvenance: "user", MerchantAgeHours: 5,
		MerchantFlags: []string{"f"}, Assurance: "signed", Available: 99, Score: 42, Signals: []string{"new_payee"},
		DeclinesLastHour: 3}
	for a := range v.Velocity {
		for w := range v.Velocity[a] {
			v.Velocity[a][w] = [2]int64{int64(10*a + w), int64(1000*a + 100*w)}
		}
	}
	for _, expr := range []string{
		`payment.amount == 1234`, `payment.currency == "CNY"`, `payment.merchant_id == "mch_1"`, `payment.agent_id == "agt_1"`,
		`payment.mandate_id == "mdt_1"`, `payment.description == "d"`, `payment.metadata["k"] == "v"`,
		`payment.payee_provenance == "untrusted"`, `payment.amount_provenance == "user"`, `merchant.category == "food"`,
		`merchant.name == "cafe"`, `merchant.age_hours == 5`, `"f" in merchant.flags`, `agent.assurance == "signed"`,
		`user.id == "usr_1"`, `user.available == 99`, `risk.score == 42`, `"new_payee" in risk.signals`,
		`now == timestamp("2026-11-27T09:00:00Z")`, `velocity.declines_last_hour == 3`,
		`velocity.agent.minute.count == 0 && velocity.agent.day.sum == 200`, `velocity.mandate.hour.count == 11`,
		`velocity.payee.day.count == 22 && velocity.payee.minute.sum == 2000`,
	} {
		p, err := CompileRisk(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if ok, err := p.EvalRisk(context.Background(), v.Activation()); !ok || err != nil {
			t.Errorf("%s = %v, %v; want true", expr, ok, err)
		}
	}
}
