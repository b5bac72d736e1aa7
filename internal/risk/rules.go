package risk

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/policy"
)

// Rule is an operator's rule: when Expression (CEL over policy.RiskVars)
// holds, the attempt gets Action. Rules run in ascending Priority; at equal
// priority block runs before review before allow, then by name. The first
// rule that matches is the last one run:
//   - an allow rule lets the attempt through, whatever the built-in
//     signals' score decided (as in Stripe Radar, allow is the override);
//   - a review or block rule raises the decision to its action, and never
//     lowers it: a review rule does not turn the score's block into a
//     review.
//
// So an operator who wants a block to win whatever allow rules say gives it
// a lower priority number than theirs.
type Rule struct {
	Name       string   `json:"name"`
	Expression string   `json:"expression"`
	Action     Decision `json:"action"`
	Priority   int      `json:"priority"`
	prg        *policy.Program
}

// Limits of rules.
const (
	MaxRuleName  = 100
	MaxPriority  = 1_000_000
	ruleFieldErr = "risk rule: %s"
)

// NewRule validates and compiles a rule: the name is 1 to MaxRuleName
// bytes of UTF-8, the action allow, review or block, the priority 0 to
// MaxPriority, and the expression a bool of bounded cost
// (policy.CompileRisk).
func NewRule(name, expression string, action Decision, priority int) (*Rule, error) {
	if name == "" || len(name) > MaxRuleName || !utf8.ValidString(name) {
		return nil, fmt.Errorf(ruleFieldErr, fmt.Sprintf("name must be 1 to %d bytes of UTF-8", MaxRuleName))
	}
	if action != Allow && action != Review && action != Block {
		return nil, fmt.Errorf(ruleFieldErr, "action must be allow, review or block")
	}
	if priority < 0 || priority > MaxPriority {
		return nil, fmt.Errorf(ruleFieldErr, fmt.Sprintf("priority must be 0 to %d", MaxPriority))
	}
	prg, err := policy.CompileRisk(expression)
	if err != nil {
		return nil, err
	}
	return &Rule{Name: name, Expression: expression, Action: action, Priority: priority, prg: prg}, nil
}

// actionRank orders actions at equal priority.
var actionRank = map[Decision]int{Block: 0, Review: 1, Allow: 2}

// Sort orders rules as Apply runs them.
func Sort(rules []*Rule) {
	slices.SortStableFunc(rules, func(a, b *Rule) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(actionRank[a.Action], actionRank[b.Action]), cmp.Compare(a.Name, b.Name))
	})
}

// Apply runs sorted rules over v and returns a with the first matching
// rule's decision as Rule says (and its name in Rule when it changed the
// decision), or a unchanged. A rule that
// cannot be evaluated (its cost limit, a missing metadata key) does not
// match; its error is returned in Errors for the operator's log.
func Apply(ctx context.Context, rules []*Rule, v *policy.RiskVars, a Assessment) (Assessment, []error) {
	v.Score = int64(a.Score)
	v.Signals = make([]string, len(a.Signals))
	for i, s := range a.Signals {
		v.Signals[i] = s.Name
	}
	var errs []error
	act := v.Activation()
	for _, r := range rules {
		if r.prg == nil { // not made by NewRule (decoded, say): never matches
			errs = append(errs, fmt.Errorf("risk rule %q is not compiled; make rules with NewRule", r.Name))
			continue
		}
		ok, err := r.prg.EvalRisk(ctx, act)
		if err != nil {
			errs = append(errs, fmt.Errorf("risk rule %q: %w", r.Name, err))
			continue
		}
		if ok {
			if r.Action == Allow || actionRank[r.Action] < actionRank[a.Decision] {
				a.Decision, a.Rule = r.Action, r.Name
			}
			return a, errs
		}
	}
	return a, errs
}

// Vars returns what the operator's rules see of in (policy.RiskVars).
func (in *Input) Vars() *policy.RiskVars {
	return &policy.RiskVars{
		Vars: policy.Vars{Amount: in.Amount, Currency: in.Currency, MerchantID: in.MerchantID, AgentID: in.AgentID,
			Description: in.Description, Metadata: in.Metadata, Category: in.Category, MerchantNm: in.Merchant,
			UserID: in.UserID, Now: in.Now},
		MandateID: in.MandateID, PayeeProvenance: known(in.PayeeProvenance), AmountProvenance: known(in.AmountProvenance),
		MerchantAgeHours: in.MerchantAgeHours, MerchantFlags: in.MerchantFlags, Assurance: in.Assurance,
		Available: in.Available, DeclinesLastHour: in.DeclinesLastHour,
		Velocity: [3][3][2]int64{velocity(&in.AgentVelocity), velocity(&in.MandateVelocity), velocity(&in.PayeeVelocity)},
	}
}

func velocity(v *Velocity) [3][2]int64 {
	return [3][2]int64{{v.Minute.Count, v.Minute.Sum}, {v.Hour.Count, v.Hour.Sum}, {v.Day.Count, v.Day.Sum}}
}

// known names the unknown provenance as rules see it.
func known(provenance string) string {
	if provenance == "" {
		return ProvenanceUnknown
	}
	return provenance
}

// Assess is the whole decision on an attempt: the built-in signals under
// cfg, then the operator's sorted rules. Errors are rules that could not
// be evaluated (they did not match), for the operator's log.
func Assess(ctx context.Context, in *Input, cfg *Config, rules []*Rule) (Assessment, []error) {
	a := Evaluate(in, cfg)
	if len(rules) == 0 {
		return a, nil
	}
	return Apply(ctx, rules, in.Vars(), a)
}

// Stored returns r as the store keeps it.
func (r *Rule) Stored(created time.Time) pb.RiskRule {
	return pb.RiskRule{Name: r.Name, Expression: r.Expression, Action: r.Action, Priority: r.Priority, CreatedAt: created}
}
