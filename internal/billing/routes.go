package billing

import (
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
)

// Routes are Token Pay's part of the REST API, which the server mounts.
func (s *Service) Routes() []rest.Route {
	return []rest.Route{
		{Method: "POST", Pattern: "/v1/billing/meters", Idempotent: true, Handler: s.createMeter},
		{Method: "GET", Pattern: "/v1/billing/meters", Handler: s.listMeters},
		{Method: "POST", Pattern: "/v1/billing/prices", Idempotent: true, Handler: s.createPrice},
		{Method: "GET", Pattern: "/v1/billing/prices", Handler: s.listPrices},
		{Method: "POST", Pattern: "/v1/billing/grants", Idempotent: true, Handler: s.createGrant},
		{Method: "POST", Pattern: "/v1/billing/grants/{id}/void", Idempotent: true, Handler: s.voidGrant},
		{Method: "POST", Pattern: "/v1/billing/reservations", Idempotent: true, Handler: s.reserveRoute},
		{Method: "GET", Pattern: "/v1/billing/reservations/{id}", Handler: s.getReservation},
		{Method: "POST", Pattern: "/v1/billing/reservations/{id}/release", Idempotent: true, Handler: s.release},
		{Method: "POST", Pattern: "/v1/billing/events", Handler: s.events},
		{Method: "POST", Pattern: "/v1/billing/recharges", Idempotent: true, Handler: s.recharge},
		{Method: "POST", Pattern: "/v1/billing/auto_recharge", Idempotent: true, Handler: s.setAutoRecharge},
		{Method: "POST", Pattern: "/v1/billing/plans", Idempotent: true, Handler: s.createPlan},
		{Method: "GET", Pattern: "/v1/billing/plans", Handler: s.listPlans},
		{Method: "POST", Pattern: "/v1/billing/subscriptions", Idempotent: true, Handler: s.subscribe},
		{Method: "POST", Pattern: "/v1/billing/subscriptions/{id}/cancel", Idempotent: true, Handler: s.cancelSubscription},
		{Method: "GET", Pattern: "/v1/billing/customers/{id}/subscriptions", Handler: s.subscriptions},
		{Method: "GET", Pattern: "/v1/billing/customers/{id}/auto_recharge", Handler: s.getAutoRecharge},
		{Method: "GET", Pattern: "/v1/billing/customers/{id}/balance", Handler: s.balance},
		{Method: "GET", Pattern: "/v1/billing/customers/{id}/grants", Handler: s.grants},
		{Method: "GET", Pattern: "/v1/billing/customers/{id}/usage", Handler: s.usage},
		{Method: "POST", Pattern: "/v1/billing/invoices", Idempotent: true, Handler: s.createInvoice},
		{Method: "GET", Pattern: "/v1/billing/invoices/{id}", Handler: s.getInvoice},
		{Method: "POST", Pattern: "/v1/billing/invoices/{id}/finalize", Idempotent: true, Handler: s.finalizeInvoice},
	}
}

func (s *Service) createMeter(q *rest.Request) (int, any, error) {
	var in struct {
		EventType   string   `json:"event_type"`
		ValuePath   string   `json:"value_path"`
		Aggregation string   `json:"aggregation"`
		GroupBy     []string `json:"group_by"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result {
		return s.CreateMeter(q.Ctx, q.Caller, q.Idem, MeterParams{EventType: in.EventType, ValuePath: in.ValuePath,
			Aggregation: in.Aggregation, GroupBy: in.GroupBy})
	})
}

func (s *Service) listMeters(q *rest.Request) (int, any, error) {
	ms, err := s.Meters(q.Ctx, q.Caller)
	return 200, map[string]any{"object": "list", "data": ms, "has_more": false}, err
}

func (s *Service) createPrice(q *rest.Request) (int, any, error) {
	var in struct {
		Meter     string  `json:"meter"`
		Model     string  `json:"model"`
		TokenType string  `json:"token_type"`
		Currency  string  `json:"currency"`
		UnitPrice *string `json:"unit_price"`
		Tiers     []struct {
			UpTo      *int64 `json:"up_to"`
			UnitPrice string `json:"unit_price"`
		} `json:"tiers"`
		EffectiveFrom *string `json:"effective_from"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	var tiers []TierParams
	if in.Tiers != nil {
		tiers = make([]TierParams, len(in.Tiers))
		for i, t := range in.Tiers {
			tiers[i] = TierParams{UpTo: t.UpTo, UnitPrice: t.UnitPrice}
		}
	}
	if in.UnitPrice == nil && tiers == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "unit_price", "unit_price is required: a decimal string of the currency's major unit per 1M units, such as \"2.50\" (or tiers, for a graduated price)")
	}
	unit := ""
	if in.UnitPrice != nil {
		unit = *in.UnitPrice
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	from, err := rest.ParseTime(in.EffectiveFrom, "effective_from")
	if err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result {
		return s.CreatePrice(q.Ctx, q.Caller, q.Idem, PriceParams{Meter: in.Meter, Model: in.Model, TokenType: in.TokenType,
			Currency: in.Currency, UnitPrice: unit, Tiers: tiers, EffectiveFrom: from})
	})
}

func (s *Service) listPrices(q *rest.Request) (int, any, error) {
	ps, err := s.Prices(q.Ctx, q.Caller)
	return 200, map[string]any{"object": "list", "data": ps, "has_more": false}, err
}

func (s *Service) createGrant(q *rest.Request) (int, any, error) {
	var in struct {
		Customer  string  `json:"customer"`
		Amount    *int64  `json:"amount"`
		Currency  string  `json:"currency"`
		Category  string  `json:"category"`
		Priority  int     `json:"priority"`
		ExpiresAt *string `json:"expires_at"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Customer == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "customer", "customer is required: a user (usr_…) or agent (agt_…) ID")
	}
	if in.Amount == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "amount", "amount is required: an integer number of the currency's minor units")
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	if in.Category == "" {
		in.Category = pb.GrantPaid
	}
	exp, err := rest.ParseTime(in.ExpiresAt, "expires_at")
	if err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result {
		return s.CreateGrant(q.Ctx, q.Caller, q.Idem, GrantParams{Customer: in.Customer, Amount: *in.Amount, Currency: in.Currency,
			Category: in.Category, Priority: in.Priority, ExpiresAt: exp})
	})
}

func (s *Service) voidGrant(q *rest.Request) (int, any, error) { return q.Act(s.VoidGrant) }

func (s *Service) reserveRoute(q *rest.Request) (int, any, error) {
	var in struct {
		Customer  string `json:"customer"`
		Meter     string `json:"meter"`
		Estimate  int64  `json:"estimate"`
		Model     string `json:"model"`
		TokenType string `json:"token_type"`
		Amount    int64  `json:"amount"`
		Currency  string `json:"currency"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Customer == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "customer", "customer is required: a user (usr_…) or agent (agt_…) ID")
	}
	if in.ExpiresIn < 0 || in.ExpiresIn > int64(pb.MaxReservationTTL/time.Second) {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "expires_in", "expires_in must be from 1 to %d seconds", int(pb.MaxReservationTTL/time.Second))
	}
	return q.Run(200, func() service.Result {
		return s.Reserve(q.Ctx, q.Caller, q.Idem, ReserveParams{Customer: in.Customer, Meter: in.Meter, Estimate: in.Estimate,
			Model: in.Model, TokenType: in.TokenType, Amount: in.Amount, Currency: in.Currency,
			ExpiresIn: time.Duration(in.ExpiresIn) * time.Second})
	})
}

func (s *Service) getReservation(q *rest.Request) (int, any, error) {
	r, err := s.Reservation(q.Ctx, q.Caller, q.PathValue("id"))
	return 200, r, err
}

func (s *Service) release(q *rest.Request) (int, any, error) { return q.Act(s.Release) }

func (s *Service) events(q *rest.Request) (int, any, error) {
	var in struct {
		Events []Event `json:"events"`
	}
	// The hand decoder for the usual body; an idempotent route (this one is
	// not) would need Decode's request hash.
	var ok bool
	if in.Events, ok = decodeEvents(q.Body); !ok || q.Idem != nil {
		if err := q.Decode(&in); err != nil {
			return 0, nil, err
		}
	}
	if in.Events == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "events", "events is required: a list of up to %d usage events", pb.MaxEventBatch)
	}
	return q.Run(200, func() service.Result { return s.Ingest(q.Ctx, q.Caller, in.Events) })
}

func (s *Service) balance(q *rest.Request) (int, any, error) {
	b, err := s.Balance(q.Ctx, q.Caller, q.Query("provider"), q.PathValue("id"))
	return 200, b, err
}

func (s *Service) grants(q *rest.Request) (int, any, error) {
	gs, err := s.Grants(q.Ctx, q.Caller, q.Query("provider"), q.PathValue("id"))
	return 200, map[string]any{"object": "list", "data": gs, "has_more": false}, err
}

func (s *Service) usage(q *rest.Request) (int, any, error) {
	uq := UsageQuery{Provider: q.Query("provider"), Customer: q.PathValue("id")}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &uq.From}, {"to", &uq.To}} {
		if v := q.Query(f.name); v != "" {
			t, err := rest.ParseTime(&v, f.name)
			if err != nil {
				return 0, nil, err
			}
			*f.dst = t
		}
	}
	if g := q.Query("group_by"); g != "" {
		uq.GroupBy = strings.Split(g, ",")
	}
	u, err := s.Usage(q.Ctx, q.Caller, uq)
	return 200, u, err
}

func (s *Service) recharge(q *rest.Request) (int, any, error) {
	var in struct {
		Provider  string `json:"provider"`
		Customer  string `json:"customer"`
		Amount    *int64 `json:"amount"`
		Currency  string `json:"currency"`
		MandateID string `json:"mandate_id"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Provider == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "provider", "provider is required: the merchant ID (mch_…) to buy credit from")
	}
	if in.Amount == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "amount", "amount is required: an integer number of the currency's minor units")
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result {
		return s.Recharge(q.Ctx, q.Caller, q.Idem, RechargeParams{Provider: in.Provider, Customer: in.Customer, Amount: *in.Amount,
			Currency: in.Currency, MandateID: in.MandateID})
	})
}

func (s *Service) createInvoice(q *rest.Request) (int, any, error) {
	var in struct {
		Customer string `json:"customer"`
		Period   string `json:"period"`
		Currency string `json:"currency"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Customer == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "customer", "customer is required: a user (usr_…) or agent (agt_…) ID")
	}
	if in.Period == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "period", "period is required: a month, YYYY-MM")
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	return q.Run(200, func() service.Result {
		return s.CreateInvoice(q.Ctx, q.Caller, q.Idem, InvoiceParams{Customer: in.Customer, Period: in.Period, Currency: in.Currency})
	})
}

func (s *Service) finalizeInvoice(q *rest.Request) (int, any, error) { return q.Act(s.FinalizeInvoice) }

func (s *Service) getInvoice(q *rest.Request) (int, any, error) {
	inv, err := s.GetInvoice(q.Ctx, q.Caller, q.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	switch q.Query("format") {
	case "", "json":
		return 200, inv, nil
	case "csv":
		return 200, rest.Raw{ContentType: "text/csv; charset=utf-8", Body: inv.CSV()}, nil
	}
	return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "format", "format must be json or csv")
}

func (s *Service) setAutoRecharge(q *rest.Request) (int, any, error) {
	var in struct {
		Provider   string `json:"provider"`
		Customer   string `json:"customer"`
		Currency   string `json:"currency"`
		Threshold  int64  `json:"threshold"`
		Target     *int64 `json:"target"`
		MonthlyCap *int64 `json:"monthly_cap"`
		MandateID  string `json:"mandate_id"`
		Enabled    *bool  `json:"enabled"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Provider == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "provider", "provider is required: the merchant ID (mch_…) to buy credit from")
	}
	if in.Target == nil || in.MonthlyCap == nil {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "target", "target and monthly_cap are required, in minor units")
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	enabled := in.Enabled == nil || *in.Enabled
	return q.Run(200, func() service.Result {
		return s.SetAutoRecharge(q.Ctx, q.Caller, q.Idem, AutoRechargeParams{Provider: in.Provider, Customer: in.Customer, Currency: in.Currency,
			Threshold: in.Threshold, Target: *in.Target, MonthlyCap: *in.MonthlyCap, MandateID: in.MandateID, Enabled: enabled})
	})
}

func (s *Service) getAutoRecharge(q *rest.Request) (int, any, error) {
	a, err := s.AutoRechargeOf(q.Ctx, q.Caller, q.Query("provider"), q.PathValue("id"), q.Query("currency"))
	return 200, a, err
}

func (s *Service) createPlan(q *rest.Request) (int, any, error) {
	var in struct {
		Name           string `json:"name"`
		Currency       string `json:"currency"`
		RecurringFee   int64  `json:"recurring_fee"`
		IncludedCredit int64  `json:"included_credit"`
		RolloverMax    int64  `json:"rollover_max"`
		RolloverDays   int    `json:"rollover_days"`
		Overage        string `json:"overage"`
		OverdraftCap   int64  `json:"overdraft_cap"`
		UsageCap       int64  `json:"usage_cap"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if err := rest.RequireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result {
		return s.CreatePlan(q.Ctx, q.Caller, q.Idem, PlanParams{Name: in.Name, Currency: in.Currency, RecurringFee: in.RecurringFee,
			IncludedCredit: in.IncludedCredit, RolloverMax: in.RolloverMax, RolloverDays: in.RolloverDays,
			Overage: in.Overage, OverdraftCap: in.OverdraftCap, UsageCap: in.UsageCap})
	})
}

func (s *Service) listPlans(q *rest.Request) (int, any, error) {
	ps, err := s.Plans(q.Ctx, q.Caller, q.Query("provider"))
	return 200, map[string]any{"object": "list", "data": ps, "has_more": false}, err
}

func (s *Service) subscribe(q *rest.Request) (int, any, error) {
	var in struct {
		Provider  string `json:"provider"`
		Plan      string `json:"plan"`
		Customer  string `json:"customer"`
		MandateID string `json:"mandate_id"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Plan == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "plan", "plan is required: a plan ID (plan_…)")
	}
	return q.Run(201, func() service.Result {
		return s.Subscribe(q.Ctx, q.Caller, q.Idem, SubscribeParams{Provider: in.Provider, Plan: in.Plan, Customer: in.Customer, MandateID: in.MandateID})
	})
}

func (s *Service) cancelSubscription(q *rest.Request) (int, any, error) {
	return q.Act(s.CancelSubscription)
}

func (s *Service) subscriptions(q *rest.Request) (int, any, error) {
	subs, err := s.Subscriptions(q.Ctx, q.Caller, q.Query("provider"), q.PathValue("id"))
	return 200, map[string]any{"object": "list", "data": subs, "has_more": false}, err
}
