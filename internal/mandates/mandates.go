// Package mandates is the mandates capability: a user grants one of their
// agents a mandate (a budget per period, a limit per payment, merchants,
// categories, a schedule, a number of payments, a CEL condition), lists and
// revokes it. Its Policy is what the payments core asks while it authorizes
// a payment under a mandate and releases what it held: the mandate's checks,
// the reservation of its budget and the budget given back
// (service.MandatePolicy). Its Service runs the mandates' own operations
// over the core (Core) and its own store interface, and offers its routes
// to the REST API (Routes).
package mandates

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/policy"
	"github.com/paybound/paybound/internal/service"
)

// Core is what mandates need of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
}

// Store is what mandates read: their own rows and the agents they are
// granted to.
type Store interface {
	pb.MandateStore
	Agent(ctx context.Context, id string) (*pb.Agent, error)
}

// Config configures mandates. Zero values take the documented defaults.
type Config struct {
	// RequireSignatureDefault is require_signature for mandates whose
	// creator does not say: true makes agents sign their payments unless a
	// user opts a mandate out.
	RequireSignatureDefault bool
	Clock                   pb.Clock // default: wall clock
}

// Service is the mandates capability's operations. Safe for concurrent use.
type Service struct {
	core             Core
	st               Store
	clock            pb.Clock
	requireSignature bool // Config.RequireSignatureDefault
}

// New returns the mandates capability over core and st.
func New(core Core, st Store, cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	return &Service{core: core, st: st, clock: cfg.Clock, requireSignature: cfg.RequireSignatureDefault}
}

// View is a mandate as the API shows it: with what is left of the
// current budget period and how many payments it has made.
type View struct {
	pb.Mandate
	RemainingBudget int64 `json:"remaining_budget"`
	PaymentsCount   int64 `json:"payments_count"`
}

// Create (user) grants one of the caller's agents a mandate.
//
// requireSignature, when not nil, sets m.RequireSignature; nil takes the
// operator's default (Config.RequireSignatureDefault).
func (s *Service) Create(ctx context.Context, caller pb.Principal, idem *service.Idempotency, m pb.Mandate, requireSignature *bool) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	if err := s.Check(ctx, caller.ID, &m, requireSignature); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		g := s.Grant(tx, caller, m)
		return &View{Mandate: g, RemainingBudget: g.Budget.Amount}, nil
	})
}

// Check validates m as a mandate user userID may grant now, and completes
// it (its require_signature, from requireSignature or the operator's
// default; its valid_from, now when zero): ErrParameterMissing or
// ErrParameterInvalid naming the field, also when the agent is not the
// user's. Mandate requests check their terms with it too, so that a
// request the user approves is granted exactly as POST /v1/mandates would.
func (s *Service) Check(ctx context.Context, userID string, m *pb.Mandate, requireSignature *bool) error {
	m.RequireSignature = s.requireSignature
	if requireSignature != nil {
		m.RequireSignature = *requireSignature
	}
	now := s.clock.Now().UTC().Truncate(time.Second)
	if err := m.Validate(now); err != nil {
		return err
	}
	if m.Condition != "" {
		if _, err := policy.Compile(m.Condition); err != nil {
			return pb.Errorf(pb.ErrParameterInvalid, "condition", "%v", err)
		}
	}
	a, err := s.st.Agent(ctx, m.AgentID)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && a.UserID != userID) {
		return pb.Errorf(pb.ErrParameterInvalid, "agent_id", "you have no agent %s", m.AgentID)
	}
	if err != nil {
		return fmt.Errorf("couldn't look up agent: %w", err)
	}
	return nil
}

// Grant writes mandate m, checked (Check), granted by user caller, in tx:
// its row and its mandate.granted log entry. It returns the mandate
// granted.
func (s *Service) Grant(tx *ledger.Tx, caller pb.Principal, m pb.Mandate) pb.Mandate {
	m.ID, m.UserID, m.CreatedAt, m.RevokedAt = pb.NewID(pb.PrefixMandate, tx.Now()), caller.ID, tx.Now().UTC().Truncate(time.Second), nil
	m.ValidFrom = m.ValidFrom.UTC().Truncate(time.Second)
	service.LogRecord(tx, m.ID, pb.ActorOf(caller), pb.LogMandateGranted, canonical(m))
	tx.PutMandate(m)
	return m
}

// Revoke (user) revokes a mandate at once. Holds already placed under it
// stay valid until captured, canceled or expired: the merchant was
// promised them.
func (s *Service) Revoke(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	if !pb.HasPrefix(id, pb.PrefixMandate) {
		return service.Result{Err: noMandate(id)}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
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
			service.LogRecord(tx, m.ID, pb.ActorOf(caller), pb.LogMandateRevoked, map[string]any{"revoked_at": now})
			tx.PutMandate(m)
		}
		return &m, nil
	})
}

func noMandate(id string) error { return pb.Errorf(pb.ErrNotFound, "id", "no such mandate: %s", id) }

// canonical wraps a type whose fields are not in JSON-name order (the
// mandate) as canonical entry data. Encoding Paybound's own types cannot
// fail; if it did, the panic fails the operation whole (the writer undoes
// it), as service.LogRecord's does.
func canonical(v any) json.RawMessage {
	b, err := pb.CanonicalData(v)
	if err != nil {
		panic(fmt.Sprintf("couldn't encode %T for the log: %v", v, err))
	}
	return b
}

// Mandate returns mandate id to its user or its agent, with its usage.
func (s *Service) Mandate(ctx context.Context, caller pb.Principal, id string) (*View, error) {
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

func (s *Service) view(ctx context.Context, m *pb.Mandate) (*View, error) {
	v := &View{Mandate: *m, RemainingBudget: m.Budget.Amount}
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

// List lists the caller's mandates (a user's, or those granted to an
// agent), newest first.
func (s *Service) List(ctx context.Context, caller pb.Principal, startingAfter string, limit int) ([]View, bool, error) {
	f := pb.MandateFilter{UserID: caller.UserID, StartingAfter: startingAfter, Limit: limit}
	switch caller.Role {
	case pb.RoleUser:
		f.UserID = caller.ID
	case pb.RoleAgent:
		f.AgentID = caller.ID
	default:
		return nil, false, service.RequireRole(caller, pb.RoleUser, pb.RoleAgent)
	}
	ms, more, err := s.st.ListMandates(ctx, f)
	if err != nil {
		return nil, false, err
	}
	out := make([]View, 0, len(ms))
	for i := range ms {
		v, err := s.view(ctx, &ms[i])
		if err != nil {
			return nil, false, err
		}
		out = append(out, *v)
	}
	return out, more, nil
}
