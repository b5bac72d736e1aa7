package billing

import (
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// Overage policies of a plan: what happens to usage beyond the credit.
const (
	// OverageBlock: a reservation beyond the available credit is refused
	// (insufficient_credit); an event beyond it is recorded as
	// uncollected.
	OverageBlock = "block"
	// OverageAllow: usage beyond the credit is drawn on the customer's
	// overdraft room (pb.BillingOverdraftRoomOwner), funded up to the
	// plan's overdraft cap, and becomes a real negative balance in the
	// ledger (pb.BillingOverdraftOwner); a reservation past the room is
	// refused (overdraft_cap).
	OverageAllow = "allow"
)

const kindTerms = "terms"

// Terms are what a customer's plan says of its usage with a provider in
// one currency, for the plan's current month: the overage policy, the
// overdraft cap, and the usage cap with what the month used of it. A
// subscription writes them when each of its months starts; they apply
// while that month lasts (a canceled or past-due subscription's terms
// lapse at its month's end, and the customer is then under "block" with
// no cap). A customer has one set per provider and currency: the
// subscription started or renewed last writes it.
//
// The overdraft cap is held by the ledger (the room account's
// constraint, as the credit account's holds the credit). The usage cap is
// held by the terms themselves: every operation that decides against it
// or adds to PeriodUsed writes them again (one more version), so that on
// PostgreSQL two processes doing so at once conflict and the loser is
// computed again from what the winner wrote.
type Terms struct {
	ID             string    `json:"id"`
	ProviderID     string    `json:"provider_id"`
	CustomerID     string    `json:"customer_id"`
	Currency       string    `json:"currency"`
	SubscriptionID string    `json:"subscription_id"`
	PlanID         string    `json:"plan_id"`
	Overage        string    `json:"overage"`
	OverdraftCap   int64     `json:"overdraft_cap"`
	UsageCap       int64     `json:"usage_cap"`
	PeriodStart    time.Time `json:"period_start"`
	PeriodEnd      time.Time `json:"period_end"`
	// PeriodUsed is what the usage acknowledged in [PeriodStart,
	// PeriodEnd) cost, in minor units, whoever paid it (credit,
	// overdraft, or nobody: uncollected).
	PeriodUsed int64 `json:"period_used"`
	Version    int64 `json:"-"`
}

func termsID(provider, customer, currency string) string {
	return "terms:" + provider + ":" + customer + ":" + currency
}

// in reports whether t applies at now.
func (t *Terms) in(now time.Time) bool {
	return t != nil && !now.Before(t.PeriodStart) && now.Before(t.PeriodEnd)
}

// allows reports whether t lets usage beyond the credit through at now.
func (t *Terms) allows(now time.Time) bool {
	return t.in(now) && t.Overage == OverageAllow && t.OverdraftCap > 0
}

// termsOf returns customer's terms with provider in cur as of this point
// in tx, or nil when there are none. pr, when set, tells a customer
// without terms without a read.
func (s *Service) termsOf(tx *ledger.Tx, pr *preread, provider, customer, cur string) (*Terms, error) {
	id := termsID(provider, customer, cur)
	if !pr.mayHaveTerms(id) {
		if _, ok := latest(tx, id); !ok {
			return nil, nil
		}
	}
	var t Terms
	o, err := s.current(tx, id, &t)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t.Version = o.Version
	return &t, nil
}

// putTerms writes t at its next version.
func (s *Service) putTerms(tx *ledger.Tx, t *Terms) error {
	t.Version++
	return s.put(tx, kindTerms, t.ID, t.ProviderID, t.CustomerID, t.Version, tx.Now().Truncate(time.Second), nil, t)
}

// room returns customer's overdraft room account in cur, nil when it has
// none.
func room(tx *ledger.Tx, provider, customer, cur string) (*pb.Account, error) {
	a, err := tx.Account(pb.BillingOverdraftRoomOwner(provider, customer), cur)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil
	}
	return a, err
}

// headroom is what may still be overdrawn on room (nil: nothing).
func headroom(room *pb.Account) int64 {
	if room == nil {
		return 0
	}
	return max(available(room), 0)
}

// owed is what a customer owes on its overdraft debt account.
func owed(debt *pb.Account) int64 {
	if debt == nil {
		return 0
	}
	return max(debt.DebitsPosted-debt.CreditsPosted, 0)
}

// fundRoom brings customer's overdraft room to what t allows: the cap
// less what is owed under "allow", nothing under "block" (what open
// reservations hold of it stays until they end).
func fundRoom(tx *ledger.Tx, t *Terms) error {
	target := int64(0)
	debt, err := tx.Account(pb.BillingOverdraftOwner(t.ProviderID, t.CustomerID), t.Currency)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		debt, err = nil, nil
	}
	if err != nil {
		return err
	}
	if t.Overage == OverageAllow {
		target = max(t.OverdraftCap-owed(debt), 0)
	}
	r, err := room(tx, t.ProviderID, t.CustomerID, t.Currency)
	if err != nil || (r == nil && target == 0) {
		return err
	}
	if r == nil {
		if r, err = tx.EnsureAccount(pb.BillingOverdraftRoomOwner(t.ProviderID, t.CustomerID), t.Currency, pb.DebitsMustNotExceedCredits); err != nil {
			return err
		}
	}
	line, err := tx.EnsureAccount(pb.BillingOverdraftLineOwner(t.ProviderID), t.Currency, 0)
	if err != nil {
		return err
	}
	switch delta := target - (r.CreditsPosted - r.DebitsPosted); {
	case delta > 0:
		_, err = tx.Transfer(line, r, delta, t.ID)
	case delta < 0:
		if take := min(-delta, headroom(r)); take > 0 {
			_, err = tx.Transfer(r, line, take, t.ID)
		}
	}
	return err
}

// recordDebt records amt drawn on customer's overdraft room (posted to
// the usage account) as owed: a transfer from its debt account to the
// provider's line.
func recordDebt(tx *ledger.Tx, provider, customer, cur string, amt int64) error {
	debt, err := tx.EnsureAccount(pb.BillingOverdraftOwner(provider, customer), cur, 0)
	if err != nil {
		return err
	}
	line, err := tx.EnsureAccount(pb.BillingOverdraftLineOwner(provider), cur, 0)
	if err != nil {
		return err
	}
	_, err = tx.Transfer(debt, line, amt, "billing overdraft drawn")
	return err
}

// repayOverdraft pays back up to amount of what customer owes provider on
// its overdraft in cur, out of a recharge of amount, and returns what it
// paid: a recharge pays the overdraft first. The debt is credited from
// the provider's issuing account (credit sold, as a grant's), and the room
// it frees goes back from the line to the room.
func repayOverdraft(tx *ledger.Tx, provider, customer, cur string, amount int64) (int64, error) {
	debt, err := tx.Account(pb.BillingOverdraftOwner(provider, customer), cur)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pay := min(owed(debt), amount)
	if pay <= 0 {
		return 0, nil
	}
	issued, err := tx.EnsureAccount(pb.BillingIssuedOwner(provider), cur, 0)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Transfer(issued, debt, pay, "billing overdraft repaid"); err != nil {
		return 0, err
	}
	r, err := tx.EnsureAccount(pb.BillingOverdraftRoomOwner(provider, customer), cur, pb.DebitsMustNotExceedCredits)
	if err != nil {
		return 0, err
	}
	line, err := tx.EnsureAccount(pb.BillingOverdraftLineOwner(provider), cur, 0)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Transfer(line, r, pay, "billing overdraft repaid"); err != nil {
		return 0, err
	}
	return pay, nil
}
