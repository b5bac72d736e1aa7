package signin

import "github.com/paybound/paybound/internal/httpapi/rest"

// Routes are sign-in's part of the REST API: a user asks for a code. The
// route is not idempotent (a retry makes a new code and voids the last),
// so the code is never kept in the idempotency store.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/signin_codes", Handler: s.issue},
	}
}

func (s *Service) issue(q *rest.Request) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	c, err := s.IssueCode(q.Ctx, q.Caller)
	return 201, c, err
}
