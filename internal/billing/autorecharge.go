package billing

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

const kindAutoRecharge = "autorecharge"

// AutoRecharge is a customer's standing order to buy a provider's credit
// when it runs low: when usage or a reservation takes the available credit
// from at least Threshold to below it (a crossing), a recharge payment
// brings it back to Target, at most MonthlyCap a calendar month (UTC).
// Each crossing is numbered (Crossings); its payment is made with the
// idempotency key of its number, so a crossing is never paid twice, however
// often the payment is retried (by the sweep, after a crash, by several
// processes). The payer is whoever set it: a user from its wallet, or an
// agent under its mandate.
type AutoRecharge struct {
	ID         string `json:"id"`
	Object     string `json:"object"` // "billing_auto_recharge"
	ProviderID string `json:"provider_id"`
	CustomerID string `json:"customer_id"`
	Currency   string `json:"currency"`
	Threshold  int64  `json:"threshold"`
	Target     int64  `json:"target"`
	MonthlyCap int64  `json:"monthly_cap"`
	MandateID  string `json:"mandate_id,omitempty"`
	Enabled    bool   `json:"enabled"`
	// Crossings counts the crossings; Paid is the last one whose payment
	// was made (or declined, or skipped at the cap).
	Crossings int64 `json:"crossings"`
	Paid      int64 `json:"paid"`
	// Pending is what the last crossing's payment is for.
	Pending       int64  `json:"pending"`
	Month         string `json:"month"`
	Spent         int64  `json:"spent"`
	LastPaymentID string `json:"last_payment_id,omitempty"`
	LastError     string `json:"last_error,omitempty"`
	// The payer.
	PayerRole   pb.Role `json:"payer_role"`
	PayerID     string  `json:"payer_id"`
	PayerUserID string  `json:"payer_user_id"`
	Version     int64   `json:"-"`
}

func autoRechargeID(provider, customer, currency string) string {
	return "autorecharge:" + provider + ":" + customer + ":" + currency
}

// AutoRechargeParams sets a customer's auto-recharge.
type AutoRechargeParams struct {
	Provider, Customer, Currency  string
	Threshold, Target, MonthlyCap int64
	MandateID                     string
	Enabled                       bool
}

// SetAutoRecharge (user, agent) sets the auto-recharge of the caller's (or
// a user's agent's) credit with a provider; the caller pays its recharges.
func (s *Service) SetAutoRecharge(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in AutoRechargeParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	customer, err := s.payerFor(ctx, caller, in.Provider, in.Customer)
	if err != nil {
		return service.Result{Err: err}
	}
	if err := pb.ValidateCurrency(in.Currency, "currency"); err != nil {
		return service.Result{Err: err}
	}
	if err := pb.ValidateAmount(in.Target, "target"); err != nil {
		return service.Result{Err: err}
	}
	if in.Threshold < 0 || in.Threshold >= in.Target {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "threshold", "threshold must be from 0 to less than target")}
	}
	if in.MonthlyCap < in.Target-in.Threshold || in.MonthlyCap > pb.MaxAmount {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "monthly_cap", "monthly_cap must cover at least one recharge (target - threshold) and be at most %d", pb.MaxAmount)}
	}
	// Whatever became of it, what was known of the auto-recharges is
	// dropped.
	defer s.known.changed(in.Provider)
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		id := autoRechargeID(in.Provider, customer, in.Currency)
		var a AutoRecharge
		o, err := s.current(tx, id, &a)
		switch {
		case pb.ErrorCode(err) == pb.ErrNotFound:
			a = AutoRecharge{ID: id, Object: "billing_auto_recharge", ProviderID: in.Provider, CustomerID: customer, Currency: in.Currency}
		case err != nil:
			return nil, err
		default:
			a.Version = o.Version
		}
		a.Threshold, a.Target, a.MonthlyCap, a.MandateID, a.Enabled = in.Threshold, in.Target, in.MonthlyCap, in.MandateID, in.Enabled
		a.PayerRole, a.PayerID, a.PayerUserID = caller.Role, caller.ID, caller.UserID
		a.Version++
		return &a, s.putAutoRecharge(tx, &a, nil)
	})
}

// payerFor checks caller may pay for customer's credit with provider (the
// caller itself, or a user's own agent) and returns the customer.
func (s *Service) payerFor(ctx context.Context, caller pb.Principal, provider, customer string) (string, error) {
	if !pb.HasPrefix(provider, pb.PrefixMerchant) {
		return "", pb.Errorf(pb.ErrParameterInvalid, "provider", "provider must be a merchant ID (mch_…)")
	}
	if customer == "" || customer == caller.ID {
		return caller.ID, nil
	}
	if caller.Role != pb.RoleUser || !pb.HasPrefix(customer, pb.PrefixAgent) {
		return "", pb.Errorf(pb.ErrParameterInvalid, "customer", "a recharge credits the caller, or a user's own agent")
	}
	a, err := s.st.Agent(ctx, customer)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && a.UserID != caller.ID) {
		return "", pb.Errorf(pb.ErrNotFound, "customer", "no such agent of yours: %s", customer)
	}
	return customer, err
}

func (s *Service) putAutoRecharge(tx *ledger.Tx, a *AutoRecharge, due *time.Time) error {
	return s.put(tx, kindAutoRecharge, a.ID, a.ProviderID, a.CustomerID, a.Version, tx.Now().Truncate(time.Second), due, a)
}

// crossed records a crossing of customer's auto-recharge threshold, if it
// has one and available went from at least its threshold (before) to
// below it (after), inside tx: the sweep pays it. With pr set, a customer
// the read before the operation found no auto-recharge for is not read
// again (one set since is concurrent with the operation).
func (s *Service) crossed(tx *ledger.Tx, pr *preread, provider, customer, currency string, before, after int64) error {
	if before <= after {
		return nil // credit did not go down: no crossing
	}
	id := autoRechargeID(provider, customer, currency)
	if !pr.mayAutoRecharge(id) {
		return nil
	}
	var a AutoRecharge
	o, err := s.current(tx, id, &a)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if !a.Enabled || before < a.Threshold || after >= a.Threshold {
		return nil
	}
	a.Version = o.Version + 1
	a.Crossings++
	a.Pending = a.Target - after
	now := tx.Now().Truncate(time.Second)
	return s.putAutoRecharge(tx, &a, &now)
}

// autoRecharge pays the last crossing of auto-recharge o, once: its
// payment's idempotency key is the crossing's number.
func (s *Service) autoRecharge(ctx context.Context, o pb.BillingObject) error {
	var a AutoRecharge
	if err := json.Unmarshal(o.Data, &a); err != nil {
		return fmt.Errorf("auto-recharge %s is unreadable: %w", o.ID, err)
	}
	if a.Paid >= a.Crossings {
		return nil
	}
	n, amount := a.Crossings, a.Pending
	month := s.cfg.Clock.Now().UTC().Format("2006-01")
	spent := a.Spent
	if a.Month != month {
		spent = 0
	}
	amount = min(amount, a.MonthlyCap-spent)
	if amount <= 0 {
		return s.settleCrossing(ctx, o.ID, n, month, "the monthly cap is reached")
	}
	payer := pb.Principal{Role: a.PayerRole, ID: a.PayerID, UserID: a.PayerUserID}
	key := fmt.Sprintf("%s:%d", a.ID, n)
	params := service.CreatePaymentParams{Amount: amount, Currency: a.Currency, MerchantID: a.ProviderID,
		Description: rechargeDescription + " for " + a.CustomerID + " (auto)", MandateID: a.MandateID, CaptureMethod: pb.CaptureAutomatic,
		Within: func(tx *ledger.Tx, p *pb.Payment) error {
			if p.Status != pb.StatusDeclined {
				r := recharge{PaymentID: p.ID, ProviderID: a.ProviderID, CustomerID: a.CustomerID}
				if err := s.credit(tx, p, &r, 1); err != nil {
					return err
				}
			}
			return s.crossingPaid(tx, a.ID, n, p, month)
		}}
	res := s.core.CreatePayment(ctx, payer, standingIdem(payer, key), params)
	if refusedOutright(res) {
		// Refused before any payment (a revoked mandate, say): recorded,
		// not retried.
		return s.settleCrossing(ctx, o.ID, n, month, res.Err.Error())
	}
	if res.Err != nil && pb.ErrorCode(res.Err).Type() != pb.TypeDeclined {
		return res.Err // retried by the next sweep, under the same key
	}
	return nil
}

// standingIdem is the idempotency of a payment a standing order makes
// (a crossing's recharge, a month's renewal), under key: made at most once.
func standingIdem(payer pb.Principal, key string) *service.Idempotency {
	return &service.Idempotency{Caller: payer.ID, Key: key, Hash: sha256.Sum256([]byte(key)),
		Render: func(v any, err error) (int, []byte) {
			b, _ := json.Marshal(map[string]any{"value": v, "error": fmt.Sprint(err)})
			return 200, b
		}}
}

// refusedOutright reports whether a standing order's payment was refused
// for good before any payment was made (an invalid request, a missing or
// revoked mandate, a permission): not worth retrying. A decline made a
// payment (its Within recorded it); anything else (the same key still in
// flight in another process, a store conflict, the ledger stopped) is
// retried under the same key.
func refusedOutright(res service.Result) bool {
	if res.Err == nil || res.Replayed {
		return false
	}
	switch pb.ErrorCode(res.Err).Type() {
	case pb.TypeInvalidRequest, pb.TypePermission, pb.TypeNotFound:
		return true
	}
	return false
}

// crossingPaid records, in the payment's operation, that crossing n was
// paid with p (or declined).
func (s *Service) crossingPaid(tx *ledger.Tx, id string, n int64, p *pb.Payment, month string) error {
	var a AutoRecharge
	o, err := s.current(tx, id, &a)
	if err != nil {
		return err
	}
	if a.Paid >= n {
		return nil
	}
	if a.Month != month {
		a.Month, a.Spent = month, 0
	}
	a.Paid, a.LastPaymentID, a.LastError = n, p.ID, ""
	if p.Status == pb.StatusDeclined {
		a.LastError = "payment " + p.ID + " was declined: " + string(p.DeclineCode)
	} else {
		a.Spent += p.Amount
	}
	a.Version = o.Version + 1
	return s.putAutoRecharge(tx, &a, nil)
}

// settleCrossing records that crossing n gets no payment, and why.
func (s *Service) settleCrossing(ctx context.Context, id string, n int64, month, why string) error {
	res := s.core.Run(ctx, nil, func(tx *ledger.Tx) (any, error) {
		var a AutoRecharge
		o, err := s.current(tx, id, &a)
		if err != nil || a.Paid >= n {
			return nil, err
		}
		if a.Month != month {
			a.Month, a.Spent = month, 0
		}
		a.Paid, a.LastError, a.Version = n, why, o.Version+1
		return nil, s.putAutoRecharge(tx, &a, nil)
	})
	return res.Err
}

// AutoRechargeOf returns the auto-recharge of customer's credit with
// provider in currency, to the provider or the customer.
func (s *Service) AutoRechargeOf(ctx context.Context, caller pb.Principal, provider, customer, currency string) (*AutoRecharge, error) {
	provider, customer, err := s.readAccess(ctx, caller, provider, customer)
	if err != nil {
		return nil, err
	}
	o, err := s.st.BillingObject(ctx, autoRechargeID(provider, customer, currency))
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, pb.Errorf(pb.ErrNotFound, "currency", "no auto-recharge of %s in %s", customer, currency)
	}
	if err != nil {
		return nil, err
	}
	var a AutoRecharge
	return &a, json.Unmarshal(o.Data, &a)
}
