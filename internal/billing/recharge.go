package billing

import (
	"context"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// rechargeDescription starts the description of every recharge payment:
// the observer's cheap filter before it looks the recharge up.
const rechargeDescription = "Token Pay credit"

// recharge is the record of a recharge payment, keyed by the payment: the
// grant it made once the payment was captured.
type recharge struct {
	PaymentID  string `json:"payment_id"`
	ProviderID string `json:"provider_id"`
	CustomerID string `json:"customer_id"`
	GrantID    string `json:"grant_id,omitempty"`
	// Repaid is what the recharge paid back of the customer's overdraft
	// before granting the rest.
	Repaid int64 `json:"repaid,omitempty"`
}

// credited reports whether r's payment already credited the customer.
func (r *recharge) credited() bool { return r.GrantID != "" || r.Repaid > 0 }

const kindRecharge = "recharge"

func rechargeID(paymentID string) string { return "recharge:" + paymentID }

// RechargeParams is a recharge: Amount of Currency paid to Provider for
// Customer's credit (default: the caller; a user may recharge its agent),
// under MandateID when an agent pays.
type RechargeParams struct {
	Provider  string
	Customer  string
	Amount    int64
	Currency  string
	MandateID string
}

// Recharge (user, agent) buys credit with a real Paybound payment from the
// caller's wallet to the provider, captured at once: under the agent's
// mandate when an agent pays, with every check a payment has (limits,
// risk control, step-up). Once the payment is captured, in the same
// commit, a paid grant of the amount is made to the customer. It answers
// as POST /v1/payments does: the payment, or a decline with its ID; a
// payment that waits for the user's confirmation grants the credit when it
// is approved and captured (Observe).
func (s *Service) Recharge(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in RechargeParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	if !pb.HasPrefix(in.Provider, pb.PrefixMerchant) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "provider", "provider must be a merchant ID (mch_…)")}
	}
	if in.Customer == "" {
		in.Customer = caller.ID
	}
	if in.Customer != caller.ID {
		if caller.Role != pb.RoleUser || !pb.HasPrefix(in.Customer, pb.PrefixAgent) {
			return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "customer", "a recharge credits the caller, or a user's own agent")}
		}
		a, err := s.st.Agent(ctx, in.Customer)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && a.UserID != caller.ID) {
			return service.Result{Err: pb.Errorf(pb.ErrNotFound, "customer", "no such agent of yours: %s", in.Customer)}
		}
		if err != nil {
			return service.Result{Err: err}
		}
	}
	params := service.CreatePaymentParams{Amount: in.Amount, Currency: in.Currency, MerchantID: in.Provider,
		Description: rechargeDescription + " for " + in.Customer, MandateID: in.MandateID, CaptureMethod: pb.CaptureAutomatic,
		Within: func(tx *ledger.Tx, p *pb.Payment) error {
			if p.Status == pb.StatusDeclined {
				return nil
			}
			r := recharge{PaymentID: p.ID, ProviderID: in.Provider, CustomerID: in.Customer}
			return s.credit(tx, p, &r, 1)
		}}
	return s.core.CreatePayment(ctx, caller, idem, params)
}

// credit records recharge r of payment p at version, crediting the
// customer when p is captured: what it owes on its overdraft is paid back
// first, and a paid grant is made of the rest.
func (s *Service) credit(tx *ledger.Tx, p *pb.Payment, r *recharge, version int64) error {
	if p.Status == pb.StatusCaptured && !r.credited() {
		repaid, err := repayOverdraft(tx, r.ProviderID, r.CustomerID, p.Currency, p.Amount)
		if err != nil {
			return err
		}
		r.Repaid = repaid
		if rest := p.Amount - repaid; rest > 0 {
			g, err := s.grant(tx, r.ProviderID, GrantParams{Customer: r.CustomerID, Amount: rest, Currency: p.Currency, Category: pb.GrantPaid})
			if err != nil {
				return err
			}
			r.GrantID = g.ID
		}
	}
	return s.put(tx, kindRecharge, rechargeID(p.ID), r.ProviderID, r.CustomerID, version, tx.Now().Truncate(time.Second), nil, r)
}

// Observe is Token Pay's ledger observer: a recharge payment captured
// after it waited (for the user's confirmation) grants its credit in the
// capture's own operation.
func (s *Service) Observe(tx *ledger.Tx, ev pb.LogEvent) error {
	if ev.Type != pb.LogPaymentCaptured {
		return nil
	}
	p, err := tx.Payment(ev.Subject)
	if err != nil || !strings.HasPrefix(p.Description, rechargeDescription) {
		return nil
	}
	var r recharge
	o, err := s.current(tx, rechargeID(p.ID), &r)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && r.credited()) {
		return nil
	}
	if err != nil {
		return err
	}
	p.Status = pb.StatusCaptured // as the entry says; the operation puts it after logging
	return s.credit(tx, &p, &r, o.Version+1)
}
