package riskctl

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
)

// Routes are risk control's part of the REST API, which the server mounts.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/risk/rules", Handler: s.putRiskRule},
		{Method: "GET", Pattern: "/v1/risk/rules", Handler: s.listRiskRules},
		{Method: "DELETE", Pattern: "/v1/risk/rules/{name}", Handler: s.deleteRiskRule},
		{Method: "GET", Pattern: "/v1/risk/attempts", Handler: s.riskAttempts},
		{Method: "POST", Pattern: "/v1/merchants/{id}/risk_flags", Handler: s.setMerchantFlags},
	}
}

func (s *Service) putRiskRule(q *rest.Request) (int, any, error) {
	var in struct {
		Name       string          `json:"name"`
		Expression string          `json:"expression"`
		Action     pb.RiskDecision `json:"action"`
		Priority   *int            `json:"priority"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	for _, f := range []struct{ name, v string }{{"name", in.Name}, {"expression", in.Expression}, {"action", string(in.Action)}} {
		if f.v == "" {
			return 0, nil, pb.Errorf(pb.ErrParameterMissing, f.name, "%s is required", f.name)
		}
	}
	if in.Priority == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "priority", "priority is required: rules run in ascending priority")
	}
	r, err := s.PutRiskRule(q.Ctx, q.Caller, in.Name, in.Expression, in.Action, *in.Priority)
	return 200, r, err
}

func (s *Service) listRiskRules(q *rest.Request) (int, any, error) {
	rules, err := s.RiskRules(q.Ctx, q.Caller)
	return 200, map[string]any{"object": "list", "data": rules, "has_more": false}, err
}

func (s *Service) deleteRiskRule(q *rest.Request) (int, any, error) {
	name := q.PathValue("name")
	err := s.DeleteRiskRule(q.Ctx, q.Caller, name)
	return 200, map[string]any{"name": name, "deleted": true}, err
}

func (s *Service) setMerchantFlags(q *rest.Request) (int, any, error) {
	var in struct {
		Flags *[]string `json:"flags"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Flags == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "flags", "flags is required: a list, empty to clear them")
	}
	f, err := s.SetMerchantFlags(q.Ctx, q.Caller, q.PathValue("id"), *in.Flags)
	return 200, f, err
}

func (s *Service) riskAttempts(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixPayment)
	if err != nil {
		return 0, nil, err
	}
	data, more, last, err := s.RiskAttempts(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more, "next_starting_after": last}, err
}
