package riskctl

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/risk"
	"github.com/paybound/paybound/internal/service"
)

// Core is what risk control's operations need of the payments core
// (service.Service).
type Core interface {
	// Merchant returns merchant id, or nil when there is none.
	Merchant(ctx context.Context, id string) (*pb.Merchant, error)
}

// Service is risk control's operations for the operator: the rules, the
// merchants' flags and the recorded attempts, over ctl. Safe for
// concurrent use.
type Service struct {
	core Core
	ctl  *Control
}

// New returns risk control's operations over core and ctl (the Control the
// core was given).
func New(core Core, ctl *Control) *Service { return &Service{core: core, ctl: ctl} }

// --- the operator's rules and flags ---

// RiskRules (operator) lists the risk rules, in the order they run.
func (s *Service) RiskRules(ctx context.Context, caller pb.Principal) ([]pb.RiskRule, error) {
	if err := service.RequireRole(caller, pb.RoleOperator); err != nil {
		return nil, err
	}
	sn, err := s.ctl.reloadRisk(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]pb.RiskRule, len(sn.stored))
	for _, r := range sn.stored {
		byName[r.Name] = r
	}
	out := make([]pb.RiskRule, 0, len(sn.stored))
	for _, r := range sn.rules {
		out = append(out, byName[r.Name])
	}
	for _, r := range sn.stored { // those that do not run, last
		if r.Error != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// PutRiskRule (operator) creates the rule name, or replaces it. The
// expression is type-checked and its cost bounded here: a rule that would
// fail or run long is refused, not stored.
func (s *Service) PutRiskRule(ctx context.Context, caller pb.Principal, name, expression string, action pb.RiskDecision, priority int) (*pb.RiskRule, error) {
	if err := service.RequireRole(caller, pb.RoleOperator); err != nil {
		return nil, err
	}
	rule, err := risk.NewRule(name, expression, action, priority)
	if err != nil {
		return nil, ruleError(err)
	}
	sn, err := s.ctl.reloadRisk(ctx)
	if err != nil {
		return nil, err
	}
	exists := false
	for _, r := range sn.stored {
		exists = exists || r.Name == name
	}
	if !exists && len(sn.stored) >= pb.MaxRiskRules {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "name", "there are %d risk rules, the most allowed; delete one first", len(sn.stored))
	}
	stored := rule.Stored(s.ctl.clock.Now().UTC().Truncate(time.Second))
	if err := s.ctl.st.PutRiskRule(ctx, stored); err != nil {
		return nil, fmt.Errorf("couldn't store the risk rule: %w", err)
	}
	if err := s.ctl.changedRisk(ctx); err != nil {
		return nil, err
	}
	s.ctl.log.Info("risk rule set", "rule", name, "action", action, "priority", priority)
	return &stored, nil
}

// ruleError codes risk.NewRule's refusal for the API: which parameter.
func ruleError(err error) error {
	msg := err.Error()
	param := "expression"
	for _, p := range []string{"name", "action", "priority"} {
		if strings.HasPrefix(msg, "risk rule: "+p) {
			param = p
		}
	}
	return pb.Errorf(pb.ErrParameterInvalid, param, "%s", msg)
}

// DeleteRiskRule (operator) removes the rule name.
func (s *Service) DeleteRiskRule(ctx context.Context, caller pb.Principal, name string) error {
	if err := service.RequireRole(caller, pb.RoleOperator); err != nil {
		return err
	}
	if err := s.ctl.st.DeleteRiskRule(ctx, name); err != nil {
		if pb.ErrorCode(err) == pb.ErrNotFound {
			return pb.Errorf(pb.ErrNotFound, "name", "no such risk rule: %s", name)
		}
		return fmt.Errorf("couldn't delete the risk rule: %w", err)
	}
	s.ctl.log.Info("risk rule deleted", "rule", name)
	return s.ctl.changedRisk(ctx)
}

// SetMerchantFlags (operator) replaces a merchant's risk flags; none
// clears them. Flags are 1 to MaxFlagLength bytes of lower-case letters,
// digits and underscores, at most MaxMerchantFlags.
func (s *Service) SetMerchantFlags(ctx context.Context, caller pb.Principal, merchantID string, flags []string) (*pb.MerchantFlags, error) {
	if err := service.RequireRole(caller, pb.RoleOperator); err != nil {
		return nil, err
	}
	if len(flags) > pb.MaxMerchantFlags {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "flags", "at most %d flags", pb.MaxMerchantFlags)
	}
	seen := map[string]bool{}
	clean := make([]string, 0, len(flags))
	for _, f := range flags {
		if !validFlag(f) {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "flags", "a flag is 1 to %d bytes of a-z, 0-9 and _; %q is not", pb.MaxFlagLength, f)
		}
		if !seen[f] {
			seen[f] = true
			clean = append(clean, f)
		}
	}
	m, err := s.core.Merchant(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, pb.Errorf(pb.ErrNotFound, "id", "no such merchant: %s", merchantID)
	}
	sn, err := s.ctl.riskSnap(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := sn.flags[merchantID]; !ok && len(clean) > 0 && len(sn.flags) >= pb.MaxFlaggedMerchants {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "flags", "%d merchants are flagged, the most allowed", len(sn.flags))
	}
	f := pb.MerchantFlags{MerchantID: merchantID, Flags: clean, UpdatedAt: s.ctl.clock.Now().UTC().Truncate(time.Second)}
	if err := s.ctl.st.SetMerchantFlags(ctx, f); err != nil {
		return nil, fmt.Errorf("couldn't store the merchant's flags: %w", err)
	}
	if err := s.ctl.changedRisk(ctx); err != nil {
		return nil, err
	}
	s.ctl.log.Info("merchant risk flags set", "merchant", merchantID, "flags", clean)
	return &f, nil
}

func validFlag(f string) bool {
	if f == "" || len(f) > pb.MaxFlagLength || !utf8.ValidString(f) {
		return false
	}
	for _, c := range f {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// RiskAttempts (operator) lists recorded attempts, newest first: each
// payment that risk control assessed, with what it saw, from a page of
// payments. last is the page's last payment ID, the next page's
// startingAfter (payments not assessed are skipped, so it need not be the
// last attempt's).
func (s *Service) RiskAttempts(ctx context.Context, caller pb.Principal, startingAfter string, limit int) (_ []pb.RiskAttempt, more bool, last string, _ error) {
	if err := service.RequireRole(caller, pb.RoleOperator); err != nil {
		return nil, false, "", err
	}
	ps, more, err := s.ctl.st.ListPayments(ctx, pb.PaymentFilter{StartingAfter: startingAfter, Limit: limit})
	if err != nil {
		return nil, false, "", fmt.Errorf("couldn't list payments: %w", err)
	}
	if len(ps) > 0 {
		last = ps[len(ps)-1].ID
	}
	out := make([]pb.RiskAttempt, 0, len(ps))
	for _, p := range ps {
		if p.Risk == nil {
			continue
		}
		in, err := fullInput(&p)
		if err != nil {
			return nil, false, "", err
		}
		out = append(out, pb.RiskAttempt{PaymentID: p.ID, CreatedAt: p.CreatedAt, Status: p.Status, Risk: p.Risk, Input: in})
	}
	return out, more, last, nil
}
