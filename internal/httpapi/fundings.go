package httpapi

import (
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// fund is POST /v1/users/{id}/fundings: the operator credits a user's
// wallet with money that arrived from outside, naming where it came from.
func (s *Server) fund(q *rest.Request) (int, any, error) {
	var in struct {
		Amount    *int64 `json:"amount"`
		Currency  string `json:"currency"`
		Reference string `json:"reference"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	amount, err := requireMoney(in.Amount, in.Currency)
	if err != nil {
		return 0, nil, err
	}
	user := q.PathValue("id")
	return q.Run(201, func() service.Result {
		return s.svc.Fund(q.Ctx, q.Caller, q.Idem, user, amount, in.Currency, in.Reference)
	})
}
