package disputes

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are the disputes' part of the REST API, which the server mounts.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/payments/{id}/disputes", Idempotent: true, Handler: s.openDispute},
		{Method: "GET", Pattern: "/v1/disputes", Handler: s.listDisputes},
		{Method: "GET", Pattern: "/v1/disputes/{id}", Handler: s.getDispute},
		{Method: "POST", Pattern: "/v1/disputes/{id}/resolve", Idempotent: true, Handler: s.resolveDispute},
	}
}

func (s *Service) openDispute(q *rest.Request) (int, any, error) {
	var in struct {
		Reason  pb.DisputeReason `json:"reason"`
		Details string           `json:"details"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Reason == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "reason", "reason is required: not_as_intended, unauthorized, merchant_error, duplicate or other")
	}
	id := q.PathValue("id")
	return q.Run(201, func() service.Result { return s.Open(q.Ctx, q.Caller, q.Idem, id, in.Reason, in.Details) })
}

func (s *Service) resolveDispute(q *rest.Request) (int, any, error) {
	var in struct {
		Outcome     string `json:"outcome"`
		Amount      *int64 `json:"amount"`
		LiableParty string `json:"liable_party"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Outcome == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "outcome", "outcome is required: refund_full, refund_partial or reject")
	}
	if in.LiableParty == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "liable_party", "liable_party is required: merchant, agent_operator, platform or user")
	}
	id := q.PathValue("id")
	return q.Run(200, func() service.Result {
		return s.Resolve(q.Ctx, q.Caller, q.Idem, id, ResolveParams{Outcome: in.Outcome, Amount: in.Amount, LiableParty: in.LiableParty})
	})
}

func (s *Service) getDispute(q *rest.Request) (int, any, error) {
	d, err := s.Dispute(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, d, err
}

func (s *Service) listDisputes(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixDispute)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.List(q.Ctx, q.Caller, q.Query("status"), after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}
