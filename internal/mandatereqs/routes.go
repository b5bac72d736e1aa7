package mandatereqs

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are mandate requests' part of the REST API, which the server
// mounts.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/mandate_requests", Idempotent: true, Handler: s.create},
		{Method: "GET", Pattern: "/v1/mandate_requests", Handler: s.list},
		{Method: "GET", Pattern: "/v1/mandate_requests/{id}", Handler: s.get},
		{Method: "POST", Pattern: "/v1/mandate_requests/{id}/approve", Idempotent: true, Handler: s.approve},
		{Method: "POST", Pattern: "/v1/mandate_requests/{id}/refuse", Idempotent: true, Handler: s.refuse},
	}
}

func (s *Service) create(q *rest.Request) (int, any, error) {
	var in struct {
		pb.MandateTerms
		Reason string `json:"reason"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	m, err := in.Mandate(false)
	if err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result {
		return s.Create(q.Ctx, q.Caller, q.Idem, m, in.RequireSignature, in.Reason)
	})
}

func (s *Service) list(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixMandateRequest)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.List(q.Ctx, q.Caller, q.Query("status"), after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

func (s *Service) get(q *rest.Request) (int, any, error) {
	r, err := s.Request(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, r, err
}

func (s *Service) approve(q *rest.Request) (int, any, error) { return q.Act(s.Approve) }

func (s *Service) refuse(q *rest.Request) (int, any, error) { return q.Act(s.Refuse) }
