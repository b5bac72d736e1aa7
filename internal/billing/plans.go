package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// ID prefixes of plans and subscriptions.
const (
	PrefixPlan         = "plan_"
	PrefixSubscription = "sub_"
)

const (
	kindPlan         = "plan"
	kindSubscription = "subscription"
)

// Plan is a provider's subscription plan: a recurring fee a month, paid
// by a real payment, and credit included each month (an "included"
// grant). Included credit left at the end of a month rolls over up to
// RolloverMax, for RolloverDays more; the rest is withdrawn. Overage says
// what usage beyond the credit does (OverageBlock, or OverageAllow up to
// OverdraftCap, drawn on the customer's overdraft); UsageCap, when set, is
// the most a subscriber's usage may cost in one month: a reservation that
// would take the month's usage and open reservations past it is refused
// (plan_cap). Both apply through the subscriber's terms (terms.go).
type Plan struct {
	ID             string    `json:"id"`
	Object         string    `json:"object"` // "billing_plan"
	ProviderID     string    `json:"provider_id"`
	Name           string    `json:"name"`
	Currency       string    `json:"currency"`
	RecurringFee   int64     `json:"recurring_fee"`
	IncludedCredit int64     `json:"included_credit"`
	RolloverMax    int64     `json:"rollover_max"`
	RolloverDays   int       `json:"rollover_days"`
	Overage        string    `json:"overage"`
	OverdraftCap   int64     `json:"overdraft_cap"`
	UsageCap       int64     `json:"usage_cap"`
	CreatedAt      time.Time `json:"created_at"`
}

// Subscription is a customer's subscription to a plan, renewed each month
// by the sweep with a payment whose idempotency key is the period's
// number: a period is never paid twice.
type Subscription struct {
	ID              string    `json:"id"`
	Object          string    `json:"object"` // "billing_subscription"
	ProviderID      string    `json:"provider_id"`
	CustomerID      string    `json:"customer_id"`
	PlanID          string    `json:"plan_id"`
	Status          string    `json:"status"` // active, past_due (a renewal was declined), canceled
	Period          int64     `json:"period"`
	PeriodStart     time.Time `json:"period_start"`
	PeriodEnd       time.Time `json:"period_end"`
	Currency        string    `json:"currency"`
	IncludedGrantID string    `json:"included_grant_id,omitempty"`
	// Fees are the last months' fees, newest last (at most maxFees).
	Fees          []SubscriptionFee `json:"fees"`
	LastPaymentID string            `json:"last_payment_id,omitempty"`
	LastError     string            `json:"last_error,omitempty"`
	MandateID     string            `json:"mandate_id,omitempty"`
	PayerRole     pb.Role           `json:"payer_role"`
	PayerID       string            `json:"payer_id"`
	PayerUserID   string            `json:"payer_user_id"`
	CreatedAt     time.Time         `json:"created_at"`
	Version       int64             `json:"-"`
}

// SubscriptionFee is one month's fee: the payment that paid it.
type SubscriptionFee struct {
	Period      int64     `json:"period"`
	PeriodStart time.Time `json:"period_start"`
	PaymentID   string    `json:"payment_id"`
	Amount      int64     `json:"amount"`
}

// maxFees bounds a subscription's record of fees: two years of months.
const maxFees = 24

// PlanParams is a new plan.
type PlanParams struct {
	Name                         string
	Currency                     string
	RecurringFee, IncludedCredit int64
	RolloverMax                  int64
	RolloverDays                 int
	// Overage is OverageBlock (the default) or OverageAllow, which takes
	// an OverdraftCap; UsageCap is 0 for none.
	Overage      string
	OverdraftCap int64
	UsageCap     int64
}

// CreatePlan (provider) defines a plan.
func (s *Service) CreatePlan(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in PlanParams) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	if strings.TrimSpace(in.Name) == "" || len(in.Name) > pb.MaxDescriptionLength || !utf8.ValidString(in.Name) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "name", "name is required: valid UTF-8 of at most %d bytes", pb.MaxDescriptionLength)}
	}
	if err := pb.ValidateCurrency(in.Currency, "currency"); err != nil {
		return service.Result{Err: err}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"recurring_fee", in.RecurringFee}, {"included_credit", in.IncludedCredit}, {"rollover_max", in.RolloverMax},
		{"overdraft_cap", in.OverdraftCap}, {"usage_cap", in.UsageCap}} {
		if f.v < 0 || f.v > pb.MaxAmount {
			return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, f.name, "%s must be from 0 to %d minor units", f.name, pb.MaxAmount)}
		}
	}
	if in.RolloverMax > in.IncludedCredit {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "rollover_max", "rollover_max can't exceed included_credit")}
	}
	if in.RolloverDays < 0 || in.RolloverDays > 366 || (in.RolloverMax > 0) != (in.RolloverDays > 0) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "rollover_days", "rollover_days is from 1 to 366 with a rollover_max, else 0")}
	}
	switch in.Overage {
	case "", OverageBlock:
		in.Overage = OverageBlock
		if in.OverdraftCap != 0 {
			return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "overdraft_cap", "overdraft_cap is for an overage of allow: block lets nothing past the credit")}
		}
	case OverageAllow:
		if in.OverdraftCap == 0 {
			return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "overdraft_cap", "an overage of allow needs overdraft_cap: the most a subscriber may owe")}
		}
	default:
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "overage", "overage must be block or allow")}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		p := Plan{ID: pb.NewID(PrefixPlan, tx.Now()), Object: "billing_plan", ProviderID: caller.ID, Name: in.Name, Currency: in.Currency,
			RecurringFee: in.RecurringFee, IncludedCredit: in.IncludedCredit, RolloverMax: in.RolloverMax, RolloverDays: in.RolloverDays,
			Overage: in.Overage, OverdraftCap: in.OverdraftCap, UsageCap: in.UsageCap, CreatedAt: tx.Now().Truncate(time.Second)}
		return &p, s.put(tx, kindPlan, p.ID, caller.ID, "", 1, p.CreatedAt, nil, p)
	})
}

// Plans lists the provider's plans (any caller naming the provider may
// read them: they are its offer).
func (s *Service) Plans(ctx context.Context, caller pb.Principal, provider string) ([]Plan, error) {
	if caller.Role == pb.RoleMerchant {
		provider = caller.ID
	}
	if !pb.HasPrefix(provider, pb.PrefixMerchant) {
		return nil, pb.Errorf(pb.ErrParameterMissing, "provider", "provider is required: the merchant ID (mch_…) whose plans to list")
	}
	ps, _, err := listCurrent[Plan](s, nil, provider, "", kindPlan, pb.MaxProviderPrices)
	return ps, err
}

// SubscribeParams subscribes a customer to a plan.
type SubscribeParams struct {
	Provider, Plan, Customer, MandateID string
}

// Subscribe (user, agent) subscribes the caller (or a user's agent) to a
// provider's plan: the first month's fee is a real payment from the
// caller (an agent under its mandate), and in its commit the subscription
// starts and the month's included credit is granted. A declined payment
// starts nothing. It answers with the payment (a plan without a fee: with
// the subscription).
func (s *Service) Subscribe(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in SubscribeParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	customer, err := s.payerFor(ctx, caller, in.Provider, in.Customer)
	if err != nil {
		return service.Result{Err: err}
	}
	plan, err := s.plan(ctx, in.Provider, in.Plan)
	if err != nil {
		return service.Result{Err: err}
	}
	// The subscriber's terms may be new: what the hot path knew of the
	// provider's terms is dropped, whatever became of the subscription.
	defer s.known.changed(in.Provider)
	// A function of tx alone: a batch computed again starts afresh.
	start := func(tx *ledger.Tx, p *pb.Payment) (*Subscription, error) {
		sub := Subscription{ID: pb.NewID(PrefixSubscription, tx.Now()), Object: "billing_subscription", ProviderID: in.Provider,
			CustomerID: customer, PlanID: plan.ID, MandateID: in.MandateID, PayerRole: caller.Role, PayerID: caller.ID,
			PayerUserID: caller.UserID, CreatedAt: tx.Now().Truncate(time.Second)}
		return &sub, s.startPeriod(tx, &sub, plan, p, 1, tx.Now().Truncate(time.Second))
	}
	if plan.RecurringFee == 0 {
		return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) { return start(tx, nil) })
	}
	return s.core.CreatePayment(ctx, caller, idem, service.CreatePaymentParams{Amount: plan.RecurringFee, Currency: plan.Currency,
		MerchantID: plan.ProviderID, Description: "Token Pay plan " + plan.Name, MandateID: in.MandateID, CaptureMethod: pb.CaptureAutomatic,
		Within: func(tx *ledger.Tx, p *pb.Payment) error {
			if p.Status == pb.StatusDeclined {
				return nil
			}
			_, err := start(tx, p)
			return err
		}})
}

// plan returns the provider's plan id.
func (s *Service) plan(ctx context.Context, provider, id string) (*Plan, error) {
	var p Plan
	o, err := s.st.BillingObject(ctx, id)
	if err == nil && o.Kind == kindPlan && o.ProviderID == provider {
		return &p, json.Unmarshal(o.Data, &p)
	}
	if err == nil || pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, pb.Errorf(pb.ErrNotFound, "plan", "no such plan of %s: %s", provider, id)
	}
	return nil, err
}

// startPeriod starts period n of sub at start, in tx: what is left of the
// last period's included credit above the plan's rollover is withdrawn
// (what stays expires RolloverDays after the new period begins), and the
// month's included credit is granted. p is the period's payment (nil
// without a fee).
func (s *Service) startPeriod(tx *ledger.Tx, sub *Subscription, plan *Plan, p *pb.Payment, n int64, start time.Time) error {
	if sub.IncludedGrantID != "" {
		var g pb.Grant
		o, err := s.current(tx, sub.IncludedGrantID, &g)
		if err != nil {
			return err
		}
		g.Version = o.Version
		if g.Status == statusActive && g.Remaining > plan.RolloverMax {
			if err := s.trim(tx, &g, g.Remaining-plan.RolloverMax); err != nil {
				return err
			}
		}
	}
	sub.Period, sub.PeriodStart, sub.PeriodEnd, sub.Status, sub.LastError = n, start, start.AddDate(0, 1, 0), "active", ""
	sub.Currency = plan.Currency
	if p != nil {
		sub.LastPaymentID = p.ID
		sub.Fees = append(sub.Fees, SubscriptionFee{Period: n, PeriodStart: start, PaymentID: p.ID, Amount: p.Amount})
		if len(sub.Fees) > maxFees {
			sub.Fees = sub.Fees[len(sub.Fees)-maxFees:]
		}
	}
	if plan.IncludedCredit > 0 {
		exp := sub.PeriodEnd.AddDate(0, 0, plan.RolloverDays)
		g, err := s.grant(tx, plan.ProviderID, GrantParams{Customer: sub.CustomerID, Amount: plan.IncludedCredit, Currency: plan.Currency,
			Category: pb.GrantIncluded, ExpiresAt: exp})
		if err != nil {
			return err
		}
		sub.IncludedGrantID = g.ID
	}
	if err := s.startTerms(tx, sub, plan); err != nil {
		return err
	}
	sub.Version++
	return s.putSubscription(tx, sub)
}

// startTerms writes the customer's terms for sub's period that starts: the
// plan's overage and caps, nothing of the period used yet.
func (s *Service) startTerms(tx *ledger.Tx, sub *Subscription, plan *Plan) error {
	t, err := s.termsOf(tx, nil, plan.ProviderID, sub.CustomerID, plan.Currency)
	if err != nil {
		return err
	}
	var version int64
	if t != nil {
		version = t.Version
	}
	overage := plan.Overage
	if overage == "" {
		overage = OverageBlock // a plan made before overage existed
	}
	t = &Terms{ID: termsID(plan.ProviderID, sub.CustomerID, plan.Currency), ProviderID: plan.ProviderID, CustomerID: sub.CustomerID,
		Currency: plan.Currency, SubscriptionID: sub.ID, PlanID: plan.ID, Overage: overage, OverdraftCap: plan.OverdraftCap,
		UsageCap: plan.UsageCap, PeriodStart: sub.PeriodStart, PeriodEnd: sub.PeriodEnd, Version: version}
	if err := fundRoom(tx, t); err != nil {
		return err
	}
	return s.putTerms(tx, t)
}

// trim withdraws amt of active grant g (what a rollover does not keep).
func (s *Service) trim(tx *ledger.Tx, g *pb.Grant, amt int64) error {
	if err := takeBack(tx, g, amt); err != nil {
		return err
	}
	g.Version++
	return s.put(tx, kindGrant, g.ID, g.ProviderID, g.CustomerID, g.Version, g.CreatedAt, g.ExpiresAt, g)
}

func (s *Service) putSubscription(tx *ledger.Tx, sub *Subscription) error {
	var due *time.Time
	if sub.Status == "active" {
		due = &sub.PeriodEnd
	}
	return s.put(tx, kindSubscription, sub.ID, sub.ProviderID, sub.CustomerID, sub.Version, sub.CreatedAt, due, sub)
}

// renew renews due subscription o for its next period, once: the
// period's payment has the idempotency key of its number.
func (s *Service) renew(ctx context.Context, o pb.BillingObject) error {
	var sub Subscription
	if err := json.Unmarshal(o.Data, &sub); err != nil {
		return fmt.Errorf("subscription %s is unreadable: %w", o.ID, err)
	}
	if sub.Status != "active" || s.cfg.Clock.Now().Before(sub.PeriodEnd) {
		return nil
	}
	plan, err := s.plan(ctx, sub.ProviderID, sub.PlanID)
	if err != nil {
		return err
	}
	// A subscription older than terms gets its first at its renewal.
	defer s.known.changed(sub.ProviderID)
	n, start := sub.Period+1, sub.PeriodEnd
	next := func(tx *ledger.Tx, p *pb.Payment) error {
		var cur Subscription
		co, err := s.current(tx, sub.ID, &cur)
		if err != nil {
			return err
		}
		if cur.Period >= n || cur.Status != "active" {
			return nil
		}
		cur.Version = co.Version
		if p != nil && p.Status == pb.StatusDeclined {
			cur.Status, cur.LastPaymentID, cur.LastError = "past_due", p.ID, "the renewal payment was declined: "+string(p.DeclineCode)
			cur.Version++
			return s.putSubscription(tx, &cur)
		}
		return s.startPeriod(tx, &cur, plan, p, n, start)
	}
	if plan.RecurringFee == 0 {
		return s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) { return nil, next(tx, nil) }).Err
	}
	payer := pb.Principal{Role: sub.PayerRole, ID: sub.PayerID, UserID: sub.PayerUserID}
	key := fmt.Sprintf("%s:%d", sub.ID, n)
	res := s.core.CreatePayment(ctx, payer, standingIdem(payer, key), service.CreatePaymentParams{Amount: plan.RecurringFee, Currency: plan.Currency,
		MerchantID: plan.ProviderID, Description: fmt.Sprintf("Token Pay plan %s, month %d", plan.Name, n), MandateID: sub.MandateID,
		CaptureMethod: pb.CaptureAutomatic, Within: next})
	if refusedOutright(res) {
		// Refused before any payment (a revoked mandate): past due.
		return s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
			var cur Subscription
			co, err := s.current(tx, sub.ID, &cur)
			if err != nil || cur.Period >= n || cur.Status != "active" {
				return nil, err
			}
			cur.Status, cur.LastError, cur.Version = "past_due", res.Err.Error(), co.Version+1
			return nil, s.putSubscription(tx, &cur)
		}).Err
	}
	if res.Err != nil && pb.ErrorCode(res.Err).Type() != pb.TypeDeclined {
		return res.Err // retried by the next sweep, under the same key
	}
	return nil
}

// CancelSubscription (the payer, or the provider) cancels a subscription:
// it is not renewed; the current period's credit stays until it expires.
func (s *Service) CancelSubscription(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if !pb.HasPrefix(id, PrefixSubscription) {
		return service.Result{Err: pb.Errorf(pb.ErrNotFound, "id", "no such subscription: %s", id)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		var sub Subscription
		o, err := s.current(tx, id, &sub)
		if err == nil && (o.Kind != kindSubscription || (caller.ID != sub.PayerID && caller.ID != sub.ProviderID)) {
			err = pb.Errorf(pb.ErrNotFound, "id", "no such subscription: %s", id)
		}
		if pb.ErrorCode(err) == pb.ErrNotFound {
			return nil, pb.Errorf(pb.ErrNotFound, "id", "no such subscription: %s", id)
		}
		if err != nil {
			return nil, err
		}
		if sub.Status == "canceled" {
			return nil, pb.Errorf(pb.ErrSubscriptionState, "", "subscription %s is already canceled", id)
		}
		sub.Status, sub.Version = "canceled", o.Version+1
		return &sub, s.putSubscription(tx, &sub)
	})
}

// Subscriptions lists a customer's subscriptions with a provider.
func (s *Service) Subscriptions(ctx context.Context, caller pb.Principal, provider, customer string) ([]Subscription, error) {
	provider, customer, err := s.readAccess(ctx, caller, provider, customer)
	if err != nil {
		return nil, err
	}
	subs, _, err := listCurrent[Subscription](s, nil, provider, customer, kindSubscription, pb.MaxProviderPrices)
	return subs, err
}
