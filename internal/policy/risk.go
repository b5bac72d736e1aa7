package policy

import (
	"context"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// RiskVars are the values an operator's risk rule sees: the mandate
// condition's (payment.amount … now) and more. The names are the contract
// documented in the API:
//
//	payment.amount, payment.currency, payment.merchant_id, payment.agent_id,
//	payment.mandate_id, payment.description, payment.metadata,
//	payment.payee_provenance, payment.amount_provenance ("user", "untrusted" or "")
//	merchant.category, merchant.name, merchant.age_hours, merchant.flags (list)
//	agent.assurance ("signed", "bearer" or "user")
//	user.id, user.available (the wallet's available balance, minor units)
//	risk.score (0–100, the built-in signals'), risk.signals (their names)
//	now (a timestamp)
type RiskVars struct {
	Vars
	MandateID        string
	PayeeProvenance  string
	AmountProvenance string
	MerchantAgeHours int64
	MerchantFlags    []string
	Assurance        string
	Available        int64
	Score            int64
	Signals          []string
}

func (v *RiskVars) activation() map[string]any {
	a := v.Vars.activation()
	flags, signals := v.MerchantFlags, v.Signals
	if flags == nil {
		flags = []string{}
	}
	if signals == nil {
		signals = []string{}
	}
	a["payment.mandate_id"], a["payment.payee_provenance"], a["payment.amount_provenance"] = v.MandateID, v.PayeeProvenance, v.AmountProvenance
	a["merchant.age_hours"], a["merchant.flags"] = v.MerchantAgeHours, flags
	a["agent.assurance"], a["user.available"] = v.Assurance, v.Available
	a["risk.score"], a["risk.signals"] = v.Score, signals
	return a
}

var riskSizes = func() map[string]uint64 {
	s := map[string]uint64{"payment.mandate_id": 40, "payment.payee_provenance": 16, "payment.amount_provenance": 16,
		"merchant.flags": 20, "agent.assurance": 8, "risk.signals": 32}
	for k, v := range sizes {
		s[k] = v
	}
	return s
}()

var riskEnv = func() *cel.Env {
	e, err := env.Extend(
		cel.Variable("payment.mandate_id", cel.StringType),
		cel.Variable("payment.payee_provenance", cel.StringType),
		cel.Variable("payment.amount_provenance", cel.StringType),
		cel.Variable("merchant.age_hours", cel.IntType),
		cel.Variable("merchant.flags", cel.ListType(cel.StringType)),
		cel.Variable("agent.assurance", cel.StringType),
		cel.Variable("user.available", cel.IntType),
		cel.Variable("risk.score", cel.IntType),
		cel.Variable("risk.signals", cel.ListType(cel.StringType)),
	)
	if err != nil {
		panic(err) // a static declaration: fails in every test run
	}
	return e
}()

// CompileRisk checks an operator's risk rule as Compile checks a mandate
// condition, in the RiskVars environment.
//
// Unlike a mandate condition, a rule runs on every payment attempt, twenty
// of them in the time budget of one, so its cost is bounded at compile time
// only (the estimate is a worst case over the variables' documented sizes)
// and not tracked again at run time.
func CompileRisk(src string) (*Program, error) { return compileWith(riskEnv, riskSizes, src) }

// RiskActivation is a RiskVars prepared once for the rules of one attempt:
// its lists converted to CEL values once, not by every rule.
type RiskActivation struct{ vars interpreter.Activation }

// Activation prepares v for EvalRisk.
func (v *RiskVars) Activation() RiskActivation {
	a := v.activation()
	for _, k := range []string{"merchant.flags", "risk.signals"} {
		a[k] = types.NewStringList(types.DefaultTypeAdapter, a[k].([]string))
	}
	act, _ := interpreter.NewActivation(a) // a map always makes one
	return RiskActivation{act}
}

// EvalRisk evaluates a rule compiled by CompileRisk. An error means the
// rule could not be evaluated; callers treat it as not matching.
func (p *Program) EvalRisk(ctx context.Context, a RiskActivation) (bool, error) {
	return asBool(p.prg.Eval(a.vars))
}
