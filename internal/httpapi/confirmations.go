package httpapi

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
)

func (s *Server) listConfirmations(q *rest.Request) (int, any, error) {
	if st := q.Query("status"); st != "" && st != "pending" {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "status", "status must be pending: only waiting confirmations are listed")
	}
	limit, after, err := q.ListParams(pb.PrefixConfirmation)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.svc.PendingConfirmations(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}
