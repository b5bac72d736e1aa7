package billing

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

const kindInvoice = "invoice"

// Invoice is a customer's usage with a provider in one calendar month
// (UTC) and currency: a line per price version, model and token type (or
// generic meter), the credit that paid for it, and what the credit could
// not cover. A draft is computed again each time it is asked for; it is
// finalized once the period and a grace period are over, and never
// changes after.
type Invoice struct {
	ID          string        `json:"id"`
	Object      string        `json:"object"` // "billing_invoice"
	ProviderID  string        `json:"provider_id"`
	CustomerID  string        `json:"customer_id"`
	Currency    string        `json:"currency"`
	Period      string        `json:"period"` // "2026-11"
	PeriodStart time.Time     `json:"period_start"`
	PeriodEnd   time.Time     `json:"period_end"`
	Status      string        `json:"status"` // draft, finalized
	Lines       []InvoiceLine `json:"lines"`
	// RecurringFee is the plans' fees of the months that began in the
	// period, each already paid by its payment (Fees): not due.
	RecurringFee int64        `json:"recurring_fee"`
	Fees         []InvoiceFee `json:"fees"`
	// Usage is the lines' amounts summed: what the period's usage cost.
	Usage int64 `json:"usage"`
	// CreditsApplied is what the customer's credit paid of it: exactly
	// what the ledger moved from the credit account for the period's
	// events.
	CreditsApplied int64 `json:"credits_applied"`
	// Overdraft is what the customer's overdraft paid of it (its plan
	// allows overage): owed, and paid back first by the next recharge.
	Overdraft int64 `json:"overdraft"`
	// AmountDue is what the credit did not cover: the overdraft and what
	// nothing covered (uncollected).
	AmountDue   int64      `json:"amount_due"`
	CreatedAt   time.Time  `json:"created_at"`
	FinalizedAt *time.Time `json:"finalized_at"`
}

// InvoiceLine is one price version's usage for one model and token type
// (and, for a graduated price, one tier).
// AmountExact is its exact cost (a decimal of the major unit); Amount is
// the minor units it was charged (see docs/tokenpay.md: the fractions of
// a customer's running total are carried, so a line's Amount may differ
// from its exact cost rounded by less than a minor unit, and the lines sum
// to the ledger's movements).
type InvoiceLine struct {
	Meter     string `json:"meter"`
	Model     string `json:"model,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	PriceID   string `json:"price_id"`
	Version   int64  `json:"price_version"`
	// Tier is the 1-based tier of a graduated price (0: not graduated);
	// UnitPrice is then the tier's.
	Tier        int    `json:"tier,omitempty"`
	UnitPrice   string `json:"unit_price"` // per 1M units
	Quantity    int64  `json:"quantity"`
	AmountExact string `json:"amount_exact"`
	Amount      int64  `json:"amount"`
	Charged     int64  `json:"-"`
	Overdraft   int64  `json:"-"`
}

// InvoiceFee is a plan's fee in an invoice, and the payment that paid it.
type InvoiceFee struct {
	SubscriptionID string `json:"subscription_id"`
	Period         int64  `json:"period"`
	PaymentID      string `json:"payment_id"`
	Amount         int64  `json:"amount"`
}

// InvoiceParams names an invoice: a customer, a month, a currency.
type InvoiceParams struct {
	Customer string
	Period   string // YYYY-MM
	Currency string
}

// invoiceGrace is how long after its period an invoice can be finalized:
// late events keep arriving until then.
const invoiceGrace = 72 * time.Hour

func periodOf(p string) (time.Time, time.Time, error) {
	t, err := time.Parse("2006-01", p)
	if err != nil {
		return time.Time{}, time.Time{}, pb.Errorf(pb.ErrParameterInvalid, "period", "period must be a month, YYYY-MM, such as 2026-11")
	}
	return t, t.AddDate(0, 1, 0), nil
}

// CreateInvoice (provider) returns the invoice of in, computed from the
// period's stored usage: the draft, made or computed again, or the
// finalized invoice as it was finalized.
func (s *Service) CreateInvoice(ctx context.Context, caller pb.Principal, idem *service.Idempotency, in InvoiceParams) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	start, end, err := periodOf(in.Period)
	if err != nil {
		return service.Result{Err: err}
	}
	if err := pb.ValidateCurrency(in.Currency, "currency"); err != nil {
		return service.Result{Err: err}
	}
	if !pb.HasPrefix(in.Customer, pb.PrefixUser) && !pb.HasPrefix(in.Customer, pb.PrefixAgent) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "customer", "customer must be a user (usr_…) or an agent (agt_…) ID")}
	}
	if !start.Before(s.cfg.Clock.Now()) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "period", "period %s has not begun", in.Period)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		inv, version, err := s.findInvoice(tx, caller.ID, in)
		if err != nil {
			return nil, err
		}
		if inv != nil && inv.Status == "finalized" {
			return inv, nil
		}
		fresh, err := s.ComputeInvoice(tx.Context(), caller.ID, in.Customer, in.Currency, start, end)
		if err != nil {
			return nil, err
		}
		fresh.ID, fresh.Period, fresh.CreatedAt = pb.NewID(pb.PrefixInvoice, tx.Now()), in.Period, tx.Now().Truncate(time.Second)
		if inv != nil {
			fresh.ID, fresh.CreatedAt = inv.ID, inv.CreatedAt
		}
		return fresh, s.putInvoice(tx, fresh, version+1)
	})
}

func (s *Service) putInvoice(tx *ledger.Tx, inv *Invoice, version int64) error {
	return s.put(tx, kindInvoice, inv.ID, inv.ProviderID, inv.CustomerID, version, inv.CreatedAt, nil, inv)
}

// findInvoice returns the provider's invoice of in as of tx and its
// version, if any.
func (s *Service) findInvoice(tx *ledger.Tx, provider string, in InvoiceParams) (*Invoice, int64, error) {
	invs, vs, err := listCurrent[Invoice](s, tx, provider, in.Customer, kindInvoice, 12*100)
	if err != nil {
		return nil, 0, err
	}
	for i := range invs {
		if invs[i].Period == in.Period && invs[i].Currency == in.Currency {
			return &invs[i], vs[i], nil
		}
	}
	return nil, 0, nil
}

// ComputeInvoice computes the invoice of customer's usage with provider
// in [start, end) and currency from the stored usage lines alone.
func (s *Service) ComputeInvoice(ctx context.Context, provider, customer, currency string, start, end time.Time) (*Invoice, error) {
	lines, prices, err := s.usageLines(ctx, provider, customer, start, end, "period")
	if err != nil {
		return nil, err
	}
	inv := &Invoice{Object: "billing_invoice", ProviderID: provider, CustomerID: customer, Currency: currency,
		PeriodStart: start, PeriodEnd: end, Status: "draft", Lines: []InvoiceLine{}}
	type key struct {
		price, model, tokenType string
		tier                    int
	}
	byKey := map[key]*InvoiceLine{}
	exact := map[key]*big.Int{}
	for _, l := range lines {
		p := prices[l.PriceID]
		if p == nil || p.Currency != currency {
			continue
		}
		k := key{l.PriceID, l.Model, l.TokenType(), l.Tier()}
		il := byKey[k]
		unit, nanos := p.UnitPrice, lineNanos(p, &l)
		if len(p.Tiers) > 0 {
			unit = FormatNanos(nanos)
		}
		if il == nil {
			il = &InvoiceLine{Meter: l.Meter, Model: l.Model, TokenType: k.tokenType, PriceID: p.ID, Version: p.Version, UnitPrice: unit}
			if len(p.Tiers) > 0 {
				il.Tier = k.tier
			}
			byKey[k], exact[k] = il, new(big.Int)
		}
		il.Quantity += l.Quantity
		if agg := s.aggregation(ctx, provider, l.Meter); agg == "sum" || agg == "count" {
			exact[k].Add(exact[k], ExactCost(l.Quantity, nanos))
		}
		il.Amount += l.Charged + l.Overdraft + l.Uncollected
		il.Charged += l.Charged
		il.Overdraft += l.Overdraft
	}
	for k, il := range byKey {
		il.AmountExact = FormatFemtos(exact[k])
		inv.Lines = append(inv.Lines, *il)
		inv.Usage += il.Amount
		inv.CreditsApplied += il.Charged
		inv.Overdraft += il.Overdraft
	}
	slices.SortFunc(inv.Lines, func(a, b InvoiceLine) int {
		return cmp.Or(cmp.Compare(a.Meter, b.Meter), cmp.Compare(a.Model, b.Model), cmp.Compare(a.TokenType, b.TokenType), cmp.Compare(a.Version, b.Version), cmp.Compare(a.PriceID, b.PriceID), cmp.Compare(a.Tier, b.Tier))
	})
	subs, _, err := listCurrent[Subscription](s, nil, provider, customer, kindSubscription, pb.MaxProviderPrices)
	if err != nil {
		return nil, err
	}
	inv.Fees = []InvoiceFee{}
	for _, sub := range subs {
		for _, f := range sub.Fees {
			if sub.Currency == currency && !f.PeriodStart.Before(start) && f.PeriodStart.Before(end) {
				inv.Fees = append(inv.Fees, InvoiceFee{SubscriptionID: sub.ID, Period: f.Period, PaymentID: f.PaymentID, Amount: f.Amount})
				inv.RecurringFee += f.Amount
			}
		}
	}
	inv.AmountDue = inv.Usage - inv.CreditsApplied
	return inv, nil
}

// aggregation is a meter's aggregation (sum for the LLM meter).
func (s *Service) aggregation(ctx context.Context, provider, meter string) string {
	if meter == pb.MeterLLMTokens {
		return "sum"
	}
	o, err := s.st.BillingObject(ctx, meter)
	var m pb.Meter
	if err != nil || o.ProviderID != provider || json.Unmarshal(o.Data, &m) != nil {
		return ""
	}
	return m.Aggregation
}

// FinalizeInvoice (provider) finalizes a draft once its period and the
// grace period are over, computed one last time.
func (s *Service) FinalizeInvoice(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := requireProvider(caller); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		var inv Invoice
		o, err := s.current(tx, id, &inv)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && (o.Kind != kindInvoice || o.ProviderID != caller.ID)) || !pb.HasPrefix(id, pb.PrefixInvoice) {
			return nil, pb.Errorf(pb.ErrNotFound, "id", "no such invoice: %s", id)
		}
		if err != nil {
			return nil, err
		}
		if inv.Status == "finalized" {
			return nil, pb.Errorf(pb.ErrInvoiceState, "", "invoice %s is already finalized", id)
		}
		if due := inv.PeriodEnd.Add(invoiceGrace); tx.Now().Before(due) {
			return nil, pb.Errorf(pb.ErrInvoiceState, "", "invoice %s can be finalized from %s, when late events for its period no longer arrive", id, due.Format(time.RFC3339))
		}
		fresh, err := s.ComputeInvoice(tx.Context(), caller.ID, inv.CustomerID, inv.Currency, inv.PeriodStart, inv.PeriodEnd)
		if err != nil {
			return nil, err
		}
		now := tx.Now().Truncate(time.Second)
		fresh.ID, fresh.Period, fresh.CreatedAt, fresh.Status, fresh.FinalizedAt = inv.ID, inv.Period, inv.CreatedAt, "finalized", &now
		return fresh, s.putInvoice(tx, fresh, o.Version+1)
	})
}

// GetInvoice returns invoice id to its provider or customer.
func (s *Service) GetInvoice(ctx context.Context, caller pb.Principal, id string) (*Invoice, error) {
	var inv Invoice
	o, err := s.st.BillingObject(ctx, id)
	if err == nil && o.Kind == kindInvoice {
		err = json.Unmarshal(o.Data, &inv)
	}
	if pb.ErrorCode(err) == pb.ErrNotFound || !pb.HasPrefix(id, pb.PrefixInvoice) || (err == nil && o.Kind != kindInvoice) {
		return nil, pb.Errorf(pb.ErrNotFound, "id", "no such invoice: %s", id)
	}
	if err != nil {
		return nil, err
	}
	if _, _, err := s.readAccess(ctx, caller, inv.ProviderID, inv.CustomerID); err != nil || (caller.Role == pb.RoleMerchant && caller.ID != inv.ProviderID) {
		return nil, pb.Errorf(pb.ErrNotFound, "id", "no such invoice: %s", id)
	}
	return &inv, nil
}

// CSV writes inv as CSV: a header, a row per line, and the totals.
func (inv *Invoice) CSV() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	i := strconv.FormatInt
	w.Write([]string{"invoice", "period", "customer", "currency", "meter", "model", "token_type", "price_id", "price_version", "tier", "unit_price_per_1m", "quantity", "amount_exact", "amount"})
	for _, l := range inv.Lines {
		tier := ""
		if l.Tier > 0 {
			tier = strconv.Itoa(l.Tier)
		}
		w.Write([]string{inv.ID, inv.Period, inv.CustomerID, inv.Currency, l.Meter, l.Model, l.TokenType, l.PriceID, i(l.Version, 10), tier, l.UnitPrice, i(l.Quantity, 10), l.AmountExact, i(l.Amount, 10)})
	}
	for _, t := range []struct {
		name string
		v    int64
	}{{"usage", inv.Usage}, {"credits_applied", -inv.CreditsApplied}, {"overdraft", inv.Overdraft}, {"amount_due", inv.AmountDue}, {"recurring_fee_paid", inv.RecurringFee}} {
		w.Write([]string{inv.ID, inv.Period, inv.CustomerID, inv.Currency, t.name, "", "", "", "", "", "", "", "", i(t.v, 10)})
	}
	w.Flush()
	return b.Bytes()
}
