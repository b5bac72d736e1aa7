package mandates

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are mandates' part of the REST API, which the server mounts.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/mandates", Idempotent: true, Handler: s.create},
		{Method: "GET", Pattern: "/v1/mandates", Handler: s.list},
		{Method: "GET", Pattern: "/v1/mandates/{id}", Handler: s.get},
		{Method: "POST", Pattern: "/v1/mandates/{id}/revoke", Idempotent: true, Handler: s.revoke},
	}
}

func (s *Service) create(q *rest.Request) (int, any, error) {
	var in pb.MandateTerms
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	m, err := in.Mandate(true)
	if err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.Create(q.Ctx, q.Caller, q.Idem, m, in.RequireSignature) })
}

func (s *Service) list(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixMandate)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.List(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

func (s *Service) get(q *rest.Request) (int, any, error) {
	m, err := s.Mandate(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, m, err
}

func (s *Service) revoke(q *rest.Request) (int, any, error) {
	return q.Act(s.Revoke)
}
