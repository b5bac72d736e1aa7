package httpapi

import pb "github.com/paybound/paybound"

func (s *Server) listConfirmations(q *request) (int, any, error) {
	if st := q.r.URL.Query().Get("status"); st != "" && st != "pending" {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "status", "status must be pending: only waiting confirmations are listed")
	}
	limit, after, err := listParams(q, pb.PrefixConfirmation)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.svc.PendingConfirmations(q.ctx, q.caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}
