package policy

import (
	"context"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// RiskVars are the values an operator's risk rule sees: the mandate
// condition's (payment.amount … now) and more. The names are the contract
// documented in the API:
//
//	payment.amount, payment.currency, payment.merchant_id, payment.agent_id,
//	payment.mandate_id, payment.description, payment.metadata,
//	payment.payee_provenance, payment.amount_provenance ("user", "untrusted" or "unknown")
//	merchant.category, merchant.name, merchant.age_hours, merchant.flags (list)
//	agent.assurance ("signed", "bearer" or "user")
//	user.id, user.available (the wallet's available balance, minor units)
//	risk.score (0–100, the built-in signals'), risk.signals (their names)
//	velocity.<agent|mandate|payee>.<minute|hour|day>.<count|sum>: what this
//	  agent, this mandate, and this payer to this payee did lately (sums in
//	  minor units)
//	velocity.declines_last_hour: the agent's declined attempts
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
	// Velocity[actor][window] is {count, sum}: actors agent, mandate,
	// payee; windows minute, hour, day (the order of VelocityActors and
	// VelocityWindows).
	Velocity         [3][3][2]int64
	DeclinesLastHour int64
}

// The velocity variables' name parts, in RiskVars.Velocity's order.
var (
	VelocityActors  = [3]string{"agent", "mandate", "payee"}
	VelocityWindows = [3]string{"minute", "hour", "day"}
)

// velocityIndex maps each velocity variable to its place in a flattened
// RiskVars.Velocity.
var velocityIndex = func() map[string]int {
	m := map[string]int{}
	for a, actor := range VelocityActors {
		for w, window := range VelocityWindows {
			for k, kind := range [2]string{"count", "sum"} {
				m["velocity."+actor+"."+window+"."+kind] = (a*3+w)*2 + k
			}
		}
	}
	return m
}()

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
		cel.Variable("velocity.declines_last_hour", cel.IntType),
	)
	if err != nil {
		panic(err)
	}
	for name := range velocityIndex {
		if e, err = e.Extend(cel.Variable(name, cel.IntType)); err != nil {
			break
		}
	}
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
// each variable converted to its CEL value once, not by every rule that
// reads it, and found by a switch rather than a map built per attempt
// (twenty rules run in the time budget of one payment).
type RiskActivation struct{ vars *riskActivation }

type riskActivation struct {
	amount, score, age, available                                       ref.Val
	currency, merchant, agent, description, category, name, user, mandt ref.Val
	payeeProv, amountProv, assurance                                    ref.Val
	metadata, flags, signals, now, declines                             ref.Val
	velocity                                                            [18]int64
}

func (a *riskActivation) ResolveName(name string) (any, bool) {
	var v ref.Val
	switch name {
	case "payment.amount":
		v = a.amount
	case "payment.currency":
		v = a.currency
	case "payment.merchant_id":
		v = a.merchant
	case "payment.agent_id":
		v = a.agent
	case "payment.mandate_id":
		v = a.mandt
	case "payment.description":
		v = a.description
	case "payment.metadata":
		v = a.metadata
	case "payment.payee_provenance":
		v = a.payeeProv
	case "payment.amount_provenance":
		v = a.amountProv
	case "merchant.category":
		v = a.category
	case "merchant.name":
		v = a.name
	case "merchant.age_hours":
		v = a.age
	case "merchant.flags":
		v = a.flags
	case "agent.assurance":
		v = a.assurance
	case "user.id":
		v = a.user
	case "user.available":
		v = a.available
	case "risk.score":
		v = a.score
	case "risk.signals":
		v = a.signals
	case "now":
		v = a.now
	case "velocity.declines_last_hour":
		v = a.declines
	default:
		i, ok := velocityIndex[name]
		if !ok {
			return nil, false
		}
		v = types.Int(a.velocity[i])
	}
	return v, true
}

func (a *riskActivation) Parent() interpreter.Activation { return nil }

func flatten(v *[3][3][2]int64) (out [18]int64) {
	for a := range v {
		for w := range v[a] {
			for k := range v[a][w] {
				out[(a*3+w)*2+k] = v[a][w][k]
			}
		}
	}
	return out
}

// Activation prepares v for EvalRisk.
func (v *RiskVars) Activation() RiskActivation {
	md := v.Metadata
	if md == nil {
		md = map[string]string{}
	}
	flags, signals := v.MerchantFlags, v.Signals
	if flags == nil {
		flags = []string{}
	}
	if signals == nil {
		signals = []string{}
	}
	ad := types.DefaultTypeAdapter
	return RiskActivation{&riskActivation{
		amount: types.Int(v.Amount), score: types.Int(v.Score), age: types.Int(v.MerchantAgeHours), available: types.Int(v.Available),
		currency: types.String(v.Currency), merchant: types.String(v.MerchantID), agent: types.String(v.AgentID),
		description: types.String(v.Description), category: types.String(v.Category), name: types.String(v.MerchantNm),
		user: types.String(v.UserID), mandt: types.String(v.MandateID), payeeProv: types.String(v.PayeeProvenance),
		amountProv: types.String(v.AmountProvenance), assurance: types.String(v.Assurance),
		metadata: types.NewStringStringMap(ad, md), flags: types.NewStringList(ad, flags), signals: types.NewStringList(ad, signals),
		now: types.Timestamp{Time: v.Now}, declines: types.Int(v.DeclinesLastHour),
		velocity: flatten(&v.Velocity),
	}}
}

// EvalRisk evaluates a rule compiled by CompileRisk. An error means the
// rule could not be evaluated; callers treat it as not matching.
func (p *Program) EvalRisk(ctx context.Context, a RiskActivation) (bool, error) {
	return asBool(p.prg.Eval(a.vars))
}
