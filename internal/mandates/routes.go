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
	var in struct {
		AgentID     string `json:"agent_id"`
		Description string `json:"description"`
		Currency    string `json:"currency"`
		MaxAmount   *int64 `json:"max_amount"`
		Budget      *struct {
			Amount *int64          `json:"amount"`
			Period pb.BudgetPeriod `json:"period"`
		} `json:"budget"`
		MerchantIDs      []string     `json:"merchant_ids"`
		Categories       []string     `json:"merchant_categories"`
		ValidFrom        *string      `json:"valid_from"`
		ExpiresAt        *string      `json:"expires_at"`
		Schedule         *pb.Schedule `json:"schedule"`
		MaxPayments      int64        `json:"max_payments"`
		ConfirmAbove     int64        `json:"confirm_above"`
		Condition        string       `json:"condition"`
		RequireSignature *bool        `json:"require_signature"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.AgentID == "":
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "agent_id", "agent_id is required: the agent the mandate is for")
	case in.MaxAmount == nil:
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "max_amount", "max_amount is required: the most one payment may be, in minor units")
	case in.Budget == nil || in.Budget.Amount == nil:
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "budget.amount", "budget.amount is required: what the agent may spend per budget.period")
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	m := pb.Mandate{AgentID: in.AgentID, Description: in.Description, Currency: in.Currency, MaxAmount: *in.MaxAmount,
		Budget: pb.Budget{Amount: *in.Budget.Amount, Period: in.Budget.Period}, MerchantIDs: in.MerchantIDs,
		Categories: in.Categories, Schedule: in.Schedule, MaxPayments: in.MaxPayments, ConfirmAbove: in.ConfirmAbove,
		Condition: in.Condition}
	var err error
	if m.ValidFrom, err = rest.ParseTime(in.ValidFrom, "valid_from"); err != nil {
		return 0, nil, err
	}
	exp, err := rest.ParseTime(in.ExpiresAt, "expires_at")
	if err != nil {
		return 0, nil, err
	}
	if !exp.IsZero() {
		m.ExpiresAt = &exp
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
