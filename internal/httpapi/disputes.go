package httpapi

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
)

func (s *Server) openDispute(q *request) (int, any, error) {
	var in struct {
		Reason  pb.DisputeReason `json:"reason"`
		Details string           `json:"details"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Reason == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "reason", "reason is required: not_as_intended, unauthorized, merchant_error, duplicate or other")
	}
	id := q.r.PathValue("id")
	return q.run(201, func() service.Result { return s.svc.OpenDispute(q.ctx, q.caller, q.idem, id, in.Reason, in.Details) })
}

func (s *Server) resolveDispute(q *request) (int, any, error) {
	var in struct {
		Outcome     string `json:"outcome"`
		Amount      *int64 `json:"amount"`
		LiableParty string `json:"liable_party"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Outcome == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "outcome", "outcome is required: refund_full, refund_partial or reject")
	}
	if in.LiableParty == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "liable_party", "liable_party is required: merchant, agent_operator, platform or user")
	}
	id := q.r.PathValue("id")
	return q.run(200, func() service.Result {
		return s.svc.ResolveDispute(q.ctx, q.caller, q.idem, id, service.ResolveParams{Outcome: in.Outcome, Amount: in.Amount, LiableParty: in.LiableParty})
	})
}

func (s *Server) getDispute(q *request) (int, any, error) {
	d, err := s.svc.Dispute(q.ctx, q.caller, q.r.PathValue("id"))
	return 200, d, err
}

func (s *Server) listDisputes(q *request) (int, any, error) {
	limit, after, err := listParams(q, pb.PrefixDispute)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.svc.ListDisputes(q.ctx, q.caller, q.r.URL.Query().Get("status"), after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}
