package mandates

import (
	"cmp"
	"fmt"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/policy"
	"github.com/paybound/paybound/internal/service"
)

// allPeriods is the key of the usage row that counts a mandate's payments
// ever (PeriodKey never produces it).
const allPeriods = "*"

// maxPrograms bounds the cache of compiled conditions; past it the cache
// starts over (as the core's caches do).
const maxPrograms = 100_000

// Policy is what the payments core asks of mandates while it authorizes a
// payment under one and releases what it held (service.MandatePolicy): the
// mandate's checks, its budget reserved and given back. It needs no core:
// it works inside the writer's Tx, with the compiled conditions it caches.
// Safe for concurrent use; the zero Policy is ready.
type Policy struct {
	conditions programs
}

var _ service.MandatePolicy = (*Policy)(nil)

// NewPolicy returns the policy of payments under a mandate, for
// service.Config.Mandates.
func NewPolicy() *Policy { return &Policy{} }

// programs caches compiled mandate conditions by mandate ID; a mandate's
// condition never changes.
type programs struct {
	mu sync.Mutex
	m  map[string]*policy.Program
}

func (ps *programs) get(m *pb.Mandate) (*policy.Program, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[m.ID]; ok {
		return p, nil
	}
	p, err := policy.Compile(m.Condition)
	if err != nil {
		return nil, err
	}
	if ps.m == nil || len(ps.m) >= maxPrograms {
		ps.m = map[string]*policy.Program{}
	}
	ps.m[m.ID] = p
	return p, nil
}

// Check runs the mandate's checks for p in order, and its condition last;
// it returns the decline code, or "" when the mandate allows p.
func (pl *Policy) Check(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment, merchant *pb.Merchant) (pb.Code, error) {
	period, all, err := usage(tx, m, p.CreatedAt)
	if err != nil {
		return "", err
	}
	check := func() pb.Code {
		return m.Check(string(p.AgentID), p.Amount, p.Currency, merchant, tx.Now(), pb.MandateUsage{
			PeriodKey: period.PeriodKey, Spent: period.Spent, Payments: all.Payments})
	}
	code := check()
	if code == pb.DeclineMandateBudgetExhausted || code == pb.DeclineMandateMaxPayments {
		// This writer's usage rows may lag what other processes gave back:
		// a decline is confirmed against the stored rows, as for funds.
		if err := cmp.Or[error](tx.RefreshUsage(period), tx.RefreshUsage(all)); err != nil {
			return "", err
		}
		code = check()
	}
	if code != "" {
		return code, nil
	}
	if m.Condition != "" {
		prg, err := pl.conditions.get(m)
		if err != nil {
			return pb.DeclineMandateCondition, nil
		}
		ok, err := prg.Eval(tx.Context(), policy.Vars{Amount: p.Amount, Currency: p.Currency, MerchantID: p.MerchantID,
			AgentID: string(p.AgentID), Description: p.Description, Metadata: p.Metadata, Category: merchant.Category,
			MerchantNm: merchant.Name, UserID: p.PayerID, Now: tx.Now()})
		if err != nil || !ok {
			return pb.DeclineMandateCondition, nil
		}
	}
	return "", nil
}

// usage returns the mandate's usage row for the budget period containing
// at, and its all-time row.
func usage(tx *ledger.Tx, m *pb.Mandate, at time.Time) (period, all *pb.MandateUsageRow, err error) {
	if period, err = tx.Usage(m.ID, m.PeriodKey(at), m.Budget.Amount, 0); err != nil {
		return nil, nil, err
	}
	if all, err = tx.Usage(m.ID, allPeriods, pb.MaxAmount, m.MaxPayments); err != nil {
		return nil, nil, err
	}
	return period, all, nil
}

// Reserve takes p's amount from its mandate's budget and counts the
// payment; the caller's Atomic makes it all-or-nothing with the hold.
func (pl *Policy) Reserve(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment) error {
	period, all, err := usage(tx, m, p.CreatedAt)
	if err != nil {
		return err
	}
	if err := tx.AdjustUsage(period, p.Amount, 1); err != nil {
		return err
	}
	return tx.AdjustUsage(all, 0, 1)
}

// CapDecline names the cap a failed Reserve hit: max_payments when the
// mandate's payments have all been made, else its budget.
func (pl *Policy) CapDecline(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment) pb.Code {
	code := pb.DeclineMandateBudgetExhausted
	if _, all, uerr := usage(tx, m, p.CreatedAt); uerr == nil && m.MaxPayments > 0 && all.Payments >= m.MaxPayments {
		code = pb.DeclineMandateMaxPayments
	}
	return code
}

// GiveBack returns amount of p's reservation to its mandate's budget (in
// the period p was made in): the part of a hold that was voided, expired or
// not captured, and what was refunded. The payment still counts towards
// max_payments.
func (pl *Policy) GiveBack(tx *ledger.Tx, p *pb.Payment, amount int64) error {
	if p.MandateID == "" || amount <= 0 {
		return nil
	}
	m, err := tx.Mandate(string(p.MandateID))
	if err != nil {
		return fmt.Errorf("couldn't load mandate %s: %w", p.MandateID, err)
	}
	period, err := tx.Usage(m.ID, m.PeriodKey(p.CreatedAt), m.Budget.Amount, 0)
	if err != nil {
		return err
	}
	if err := tx.AdjustUsage(period, -amount, 0); err != nil {
		return fmt.Errorf("couldn't give %d back to mandate %s: %w", amount, m.ID, err)
	}
	return nil
}

// Message explains a mandate decline in the mandate's own terms.
func (pl *Policy) Message(code pb.Code, m *pb.Mandate, p *pb.Payment, now time.Time) string {
	amt := func(v int64) string { return pb.FormatAmount(v, m.Currency) + " " + m.Currency }
	switch code {
	case pb.DeclineMandateNotForAgent:
		return "the mandate was granted to another agent"
	case pb.DeclineMandateRevoked:
		return "the user revoked the mandate"
	case pb.DeclineMandateExpired:
		return "the mandate has expired"
	case pb.DeclineMandateNotYetValid:
		return "the mandate is not valid yet"
	case pb.DeclineMandateCurrencyMismatch:
		return "the mandate is for payments in " + m.Currency
	case pb.DeclineMandateAmountExceeded:
		if m.NeedsConfirmation(p.Amount) && p.Amount <= m.MaxAmount {
			return "the amount is above the mandate's confirm_above of " + amt(m.ConfirmAbove) + "; the user must pay it"
		}
		return "the amount is above the mandate's limit of " + amt(m.MaxAmount) + " per payment"
	case pb.DeclineMandateBudgetExhausted:
		return "the mandate's " + string(m.Budget.Period) + " budget of " + amt(m.Budget.Amount) + " has too little left"
	case pb.DeclineMandateMerchant:
		return "the mandate does not cover this merchant"
	case pb.DeclineMandateSchedule:
		return "the mandate does not allow payments at this time: " + m.ScheduleText(now)
	case pb.DeclineMandateMaxPayments:
		return fmt.Sprintf("the mandate allows %d payments and they have been made", m.MaxPayments)
	case pb.DeclineMandateCondition:
		return "the mandate's condition does not hold for this payment"
	}
	return string(code)
}
