// Package policy compiles and evaluates the CEL expressions that users and
// operators write: a mandate's condition now, risk rules later. Expressions
// are type-checked and cost-bounded when they are saved, so that a payment
// never meets an expression that fails to compile or runs long.
package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Limits on expressions.
const (
	MaxExpressionBytes = 2000
	// MaxCost bounds both the estimated worst-case cost at compile time and
	// the actual cost of one evaluation (CEL cost units: about one per
	// operation and per byte compared).
	MaxCost = 10_000
)

// ErrInvalid is wrapped by Compile's errors: the expression is refused.
var ErrInvalid = errors.New("policy: invalid expression")

// Vars are the values an expression sees. The names are the contract
// documented in the API: payment.amount (int, minor units), payment.currency,
// payment.merchant_id, payment.agent_id, payment.description,
// payment.metadata (map of string to string), merchant.category,
// merchant.name, user.id and now (a timestamp; use now.getHours("Asia/Shanghai")
// for local time).
type Vars struct {
	Amount      int64
	Currency    string
	MerchantID  string
	AgentID     string
	Description string
	Metadata    map[string]string
	Category    string
	MerchantNm  string
	UserID      string
	Now         time.Time
}

func (v *Vars) activation() map[string]any {
	md := v.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return map[string]any{
		"payment.amount": v.Amount, "payment.currency": v.Currency, "payment.merchant_id": v.MerchantID,
		"payment.agent_id": v.AgentID, "payment.description": v.Description, "payment.metadata": md,
		"merchant.category": v.Category, "merchant.name": v.MerchantNm, "user.id": v.UserID, "now": v.Now,
	}
}

// sizes bound the variable-length inputs for the cost estimate: what the
// API's own limits allow.
var sizes = map[string]uint64{
	"payment.currency": 3, "payment.merchant_id": 40, "payment.agent_id": 40, "payment.description": 1000,
	"payment.metadata": 20, "merchant.category": 100, "merchant.name": 200, "user.id": 40,
}

var env = func() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("payment.amount", cel.IntType),
		cel.Variable("payment.currency", cel.StringType),
		cel.Variable("payment.merchant_id", cel.StringType),
		cel.Variable("payment.agent_id", cel.StringType),
		cel.Variable("payment.description", cel.StringType),
		cel.Variable("payment.metadata", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("merchant.category", cel.StringType),
		cel.Variable("merchant.name", cel.StringType),
		cel.Variable("user.id", cel.StringType),
		cel.Variable("now", cel.TimestampType),
	)
	if err != nil {
		panic(err) // a static declaration: fails in every test run, never in production only
	}
	return e
}()

// Program is a compiled, checked expression. Safe for concurrent use.
type Program struct {
	Source string
	prg    cel.Program
}

// Compile parses and type-checks a mandate condition, src, which must yield
// a bool and whose worst-case cost is at most MaxCost.
func Compile(src string) (*Program, error) { return compile(env, sizes, src) }

// compile checks src in env; sizes bound its variable-length inputs.
func compile(env *cel.Env, sizes map[string]uint64, src string) (*Program, error) {
	return compileWith(env, sizes, src, cel.CostLimit(MaxCost), cel.InterruptCheckFrequency(100))
}

// compileWith is compile with the program's runtime options.
func compileWith(env *cel.Env, sizes map[string]uint64, src string, opts ...cel.ProgramOption) (*Program, error) {
	if len(src) == 0 || len(src) > MaxExpressionBytes {
		return nil, fmt.Errorf("%w: an expression is 1 to %d bytes", ErrInvalid, MaxExpressionBytes)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, iss.Err())
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, fmt.Errorf("%w: the expression must be true or false, not %s", ErrInvalid, ast.OutputType())
	}
	est, err := env.EstimateCost(ast, estimator{sizes})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if est.Max > MaxCost {
		return nil, fmt.Errorf("%w: the expression may cost up to %d units; the limit is %d", ErrInvalid, est.Max, MaxCost)
	}
	prg, err := env.Program(ast, append(opts, cel.EvalOptions(cel.OptOptimize))...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Program{Source: src, prg: prg}, nil
}

// Eval evaluates p over v. An error means the expression could not be
// evaluated (a missing metadata key, the cost limit): callers treat it as
// false, since a condition that cannot be shown true does not hold.
func (p *Program) Eval(ctx context.Context, v Vars) (bool, error) {
	return p.eval(ctx, v.activation())
}

func (p *Program) eval(ctx context.Context, vars map[string]any) (bool, error) {
	return asBool(p.prg.ContextEval(ctx, vars))
}

// asBool turns an evaluation's outcome into the expression's truth.
func asBool(out ref.Val, _ *cel.EvalDetails, err error) (bool, error) {
	if err != nil {
		return false, fmt.Errorf("policy: %w", err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("policy: the expression gave %v, not a bool", out.Value())
	}
	return b, nil
}
