package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/policy"
)

// allPeriods is the key of the usage row that counts a mandate's payments
// ever (PeriodKey never produces it).
const allPeriods = "*"

// MandateView is a mandate as the API shows it: with what is left of the
// current budget period and how many payments it has made.
type MandateView struct {
	pb.Mandate
	RemainingBudget int64 `json:"remaining_budget"`
	PaymentsCount   int64 `json:"payments_count"`
}

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
	if ps.m == nil || len(ps.m) >= maxKeyCache {
		ps.m = map[string]*policy.Program{}
	}
	ps.m[m.ID] = p
	return p, nil
}

// CreateMandate (user) grants one of the caller's agents a mandate.
//
// requireSignature, when not nil, sets m.RequireSignature; nil takes the
// operator's default (Config.RequireSignatureDefault).
func (s *Service) CreateMandate(ctx context.Context, caller pb.Principal, idem *Idempotency, m pb.Mandate, requireSignature *bool) Result {
	if err := RequireRole(caller, pb.RoleUser); err != nil {
		return Result{Err: err}
	}
	m.RequireSignature = s.cfg.RequireSignatureDefault
	if requireSignature != nil {
		m.RequireSignature = *requireSignature
	}
	now := s.clock.Now().UTC().Truncate(time.Second)
	if err := m.Validate(now); err != nil {
		return Result{Err: err}
	}
	if m.Condition != "" {
		if _, err := policy.Compile(m.Condition); err != nil {
			return Result{Err: pb.Errorf(pb.ErrParameterInvalid, "condition", "%v", err)}
		}
	}
	a, err := s.st.Agent(ctx, m.AgentID)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && a.UserID != caller.ID) {
		return Result{Err: pb.Errorf(pb.ErrParameterInvalid, "agent_id", "you have no agent %s", m.AgentID)}
	}
	if err != nil {
		return Result{Err: fmt.Errorf("couldn't look up agent: %w", err)}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		m.ID, m.UserID, m.CreatedAt, m.RevokedAt = pb.NewID(pb.PrefixMandate, tx.Now()), caller.ID, now, nil
		m.ValidFrom = m.ValidFrom.UTC().Truncate(time.Second)
		logRecord(tx, m.ID, pb.ActorOf(caller), pb.LogMandateGranted, canonical(m))
		tx.PutMandate(m)
		return &MandateView{Mandate: m, RemainingBudget: m.Budget.Amount}, nil
	}))
}

// RevokeMandate (user) revokes a mandate at once. Holds already placed
// under it stay valid until captured, canceled or expired: the merchant was
// promised them.
func (s *Service) RevokeMandate(ctx context.Context, caller pb.Principal, idem *Idempotency, id string) Result {
	if err := RequireRole(caller, pb.RoleUser); err != nil {
		return Result{Err: err}
	}
	if !pb.HasPrefix(id, pb.PrefixMandate) {
		return Result{Err: noMandate(id)}
	}
	return result(s.run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		m, err := tx.FreshMandate(id)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && m.UserID != caller.ID) {
			return nil, noMandate(id)
		}
		if err != nil {
			return nil, err
		}
		if m.RevokedAt == nil {
			now := tx.Now().Truncate(time.Second)
			m.RevokedAt = &now
			logRecord(tx, m.ID, pb.ActorOf(caller), pb.LogMandateRevoked, map[string]any{"revoked_at": now})
			tx.PutMandate(m)
		}
		return &m, nil
	}))
}

func noMandate(id string) error { return pb.Errorf(pb.ErrNotFound, "id", "no such mandate: %s", id) }

// Mandate returns mandate id to its user or its agent, with its usage.
func (s *Service) Mandate(ctx context.Context, caller pb.Principal, id string) (*MandateView, error) {
	if !pb.HasPrefix(id, pb.PrefixMandate) {
		return nil, noMandate(id)
	}
	m, err := s.st.Mandate(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && m.UserID != caller.ID && m.AgentID != caller.ID) {
		return nil, noMandate(id)
	}
	if err != nil {
		return nil, err
	}
	return s.view(ctx, m)
}

func (s *Service) view(ctx context.Context, m *pb.Mandate) (*MandateView, error) {
	v := &MandateView{Mandate: *m, RemainingBudget: m.Budget.Amount}
	if u, err := s.st.MandateUsage(ctx, m.ID, m.PeriodKey(s.clock.Now())); err == nil {
		v.RemainingBudget -= u.Spent
	} else if pb.ErrorCode(err) != pb.ErrNotFound {
		return nil, err
	}
	if u, err := s.st.MandateUsage(ctx, m.ID, allPeriods); err == nil {
		v.PaymentsCount = u.Payments
	} else if pb.ErrorCode(err) != pb.ErrNotFound {
		return nil, err
	}
	return v, nil
}

// ListMandates lists the caller's mandates (a user's, or those granted to
// an agent), newest first.
func (s *Service) ListMandates(ctx context.Context, caller pb.Principal, startingAfter string, limit int) ([]MandateView, bool, error) {
	f := pb.MandateFilter{UserID: caller.UserID, StartingAfter: startingAfter, Limit: limit}
	switch caller.Role {
	case pb.RoleUser:
		f.UserID = caller.ID
	case pb.RoleAgent:
		f.AgentID = caller.ID
	default:
		return nil, false, RequireRole(caller, pb.RoleUser, pb.RoleAgent)
	}
	ms, more, err := s.st.ListMandates(ctx, f)
	if err != nil {
		return nil, false, err
	}
	out := make([]MandateView, 0, len(ms))
	for i := range ms {
		v, err := s.view(ctx, &ms[i])
		if err != nil {
			return nil, false, err
		}
		out = append(out, *v)
	}
	return out, more, nil
}

// checkMandate runs the mandate's checks for p in order, and its condition
// last; it returns the decline code, or "" when the mandate allows p.
func (s *Service) checkMandate(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment, merchant *pb.Merchant) (pb.Code, error) {
	period, all, err := s.usage(tx, m, p.CreatedAt)
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
		if err := firstErr(tx.RefreshUsage(period), tx.RefreshUsage(all)); err != nil {
			return "", err
		}
		code = check()
	}
	if code != "" {
		return code, nil
	}
	if m.Condition != "" {
		prg, err := s.conditions.get(m)
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
func (s *Service) usage(tx *ledger.Tx, m *pb.Mandate, at time.Time) (period, all *pb.MandateUsageRow, err error) {
	if period, err = tx.Usage(m.ID, m.PeriodKey(at), m.Budget.Amount, 0); err != nil {
		return nil, nil, err
	}
	if all, err = tx.Usage(m.ID, allPeriods, pb.MaxAmount, m.MaxPayments); err != nil {
		return nil, nil, err
	}
	return period, all, nil
}

// reserve takes p's amount from its mandate's budget and counts the
// payment; the caller's Atomic makes it all-or-nothing with the hold.
func (s *Service) reserve(tx *ledger.Tx, m *pb.Mandate, p *pb.Payment) error {
	period, all, err := s.usage(tx, m, p.CreatedAt)
	if err != nil {
		return err
	}
	if err := tx.AdjustUsage(period, p.Amount, 1); err != nil {
		return err
	}
	return tx.AdjustUsage(all, 0, 1)
}

// giveBack returns amount of p's reservation to its mandate's budget (in
// the period p was made in): the part of a hold that was voided, expired or
// not captured, and what was refunded. The payment still counts towards
// max_payments.
func (s *Service) giveBack(tx *ledger.Tx, p *pb.Payment, amount int64) error {
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

// usageDecline names the cap a reservation hit.
func usageDecline(err error) bool { return errors.Is(err, ledger.ErrUsageCap) }
