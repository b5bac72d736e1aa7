// Package mandatereqs is the mandate requests capability: an agent asks
// its user for a mandate (the terms POST /v1/mandates takes, and a reason
// in the agent's words), and the user approves it, which grants exactly
// that mandate in the same ledger operation, or refuses it. A request is
// decided once; undecided, it expires after pb.MandateRequestLifetime. An
// agent has at most pb.MaxPendingMandateRequests requests waiting, so that
// it cannot flood its user. The mandate itself is the mandates
// capability's, reached through the Mandates interface declared here.
package mandatereqs

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// Core is what mandate requests need of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
}

// Mandates is what mandate requests need of the mandates capability
// (mandates.Service): the checks of POST /v1/mandates, and the grant of a
// checked mandate inside a ledger operation.
type Mandates interface {
	// Check validates m as a mandate user userID may grant now and
	// completes it (require_signature, valid_from).
	Check(ctx context.Context, userID string, m *pb.Mandate, requireSignature *bool) error
	// Grant writes mandate m, checked, granted by caller, in tx.
	Grant(tx *ledger.Tx, caller pb.Principal, m pb.Mandate) pb.Mandate
}

// Store is what mandate requests read: their own rows.
type Store interface {
	pb.MandateRequestStore
}

// Config configures the capability. Zero values take the defaults.
type Config struct {
	Clock pb.Clock // default: wall clock
}

// Service is the mandate requests capability. Safe for concurrent use.
type Service struct {
	core     Core
	mandates Mandates
	st       Store
	clock    pb.Clock
	busy     sync.Map // claimed key → chan closed on release (claim)
}

// New returns the capability over core, the mandates capability and st.
func New(core Core, mandates Mandates, st Store, cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = pb.SystemClock{}
	}
	return &Service{core: core, mandates: mandates, st: st, clock: cfg.Clock}
}

// claim holds key (a request's ID, or an agent's) for one operation of
// this process until release, which the caller calls once the operation's
// batch has committed (core.Run has returned). The ledger writer applies a
// batch while the one before it commits, so an operation that read a
// request from the store could miss a decision still in flight and decide
// it again, or miss a request just made and pass the agent's cap; another
// operation on key waits its turn (at most lockWait, or ctx's end), then
// reads what the first one wrote. A shared store's writer does not overlap
// batches, and refuses a second decision from another process by the
// request's version.
func (s *Service) claim(ctx context.Context, key string) (release func(), err error) {
	mine := make(chan struct{})
	timer := time.NewTimer(lockWait)
	defer timer.Stop()
	for {
		held, taken := s.busy.LoadOrStore(key, mine)
		if !taken {
			return func() { s.busy.Delete(key); close(mine) }, nil
		}
		select {
		case <-held.(chan struct{}):
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, &pb.Error{Code: pb.ErrIdempotencyRunning, Message: "another request has been changing " + key + " for too long; retry in a moment", RetryAfter: time.Second}
		}
	}
}

// lockWait bounds how long an operation waits for another on the same key.
const lockWait = 10 * time.Second

// requests picks the capability's list of a batch.
func requests(b *pb.Batch) *[]pb.MandateRequest { return &b.MandateRequests }

func noRequest(id string) error {
	return pb.Errorf(pb.ErrNotFound, "id", "no such mandate request: %s", id)
}

// Create (agent) asks the agent's user for mandate m (the agent's own:
// m.AgentID is the caller or empty), with reason. The terms are checked as
// POST /v1/mandates checks them, so that an approval grants them as they
// are (ErrParameterMissing, ErrParameterInvalid naming the field); an
// agent with pb.MaxPendingMandateRequests requests waiting is refused with
// ErrTooManyMandateRequests.
func (s *Service) Create(ctx context.Context, caller pb.Principal, idem *service.Idempotency, m pb.Mandate, requireSignature *bool, reason string) service.Result {
	if err := service.RequireRole(caller, pb.RoleAgent); err != nil {
		return service.Result{Err: err}
	}
	if m.AgentID == "" {
		m.AgentID = caller.ID
	}
	if m.AgentID != caller.ID {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "agent_id", "an agent asks for a mandate for itself: agent_id must be %s or omitted", caller.ID)}
	}
	if strings.TrimSpace(reason) == "" {
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "reason", "reason is required: tell the user why you need this mandate")}
	}
	if len(reason) > pb.MaxMandateRequestReason || !utf8.ValidString(reason) {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "reason", "reason must be valid UTF-8 of at most %d bytes", pb.MaxMandateRequestReason)}
	}
	checked := m // Check completes valid_from; the request keeps "from the approval"
	if err := s.mandates.Check(ctx, caller.UserID, &checked, requireSignature); err != nil {
		return service.Result{Err: err}
	}
	m.Object = "mandate"
	release, err := s.claim(ctx, caller.ID)
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		now := tx.Now().UTC().Truncate(time.Second)
		n, err := s.waiting(tx, caller.ID, now)
		if err != nil {
			return nil, err
		}
		if n >= pb.MaxPendingMandateRequests {
			return nil, pb.Errorf(pb.ErrTooManyMandateRequests, "", "you have %d mandate requests waiting for your user already; wait for their answer", n)
		}
		r := pb.MandateRequest{ID: pb.NewID(pb.PrefixMandateRequest, tx.Now()), Object: "mandate_request", UserID: caller.UserID,
			AgentID: caller.ID, Status: pb.MandateRequestPending, Reason: reason, Terms: m, RequireSignature: requireSignature,
			CreatedAt: now, ExpiresAt: now.Add(pb.MandateRequestLifetime), Version: 1}
		ledger.Add(tx, requests, r)
		return &r, nil
	})
}

// waiting counts agent's requests waiting at now: those stored pending and
// not expired, and those this batch made.
func (s *Service) waiting(tx *ledger.Tx, agent string, now time.Time) (int, error) {
	n := 0
	for _, r := range ledger.Added(tx, requests) {
		if r.AgentID == agent && r.Version == 1 {
			n++
		}
	}
	// At most MaxPendingMandateRequests are ever pending and unexpired, so
	// one page (MaxListLimit) of the pending ones, newest first, holds them.
	rs, _, err := s.st.ListMandateRequests(tx.Context(), pb.MandateRequestFilter{AgentID: agent, Status: pb.MandateRequestPending, Limit: pb.MaxListLimit})
	if err != nil {
		return 0, err
	}
	for _, r := range rs {
		if r.Shown(now).Status == pb.MandateRequestPending {
			n++
		}
	}
	return n, nil
}

// current is request id as of this point in tx's batch.
func (s *Service) current(tx *ledger.Tx, id string) (pb.MandateRequest, error) {
	if r, ok := ledger.Latest(tx, requests, func(r *pb.MandateRequest) string { return r.ID }, id); ok {
		return r, nil
	}
	r, err := s.st.MandateRequest(tx.Context(), id)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return pb.MandateRequest{}, noRequest(id)
	}
	if err != nil {
		return pb.MandateRequest{}, err
	}
	return *r, nil
}

// Request returns request id to its user or its agent.
func (s *Service) Request(ctx context.Context, caller pb.Principal, id string) (*pb.MandateRequest, error) {
	if !pb.HasPrefix(id, pb.PrefixMandateRequest) {
		return nil, noRequest(id)
	}
	r, err := s.st.MandateRequest(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && !party(r, caller)) {
		return nil, noRequest(id)
	}
	if err != nil {
		return nil, err
	}
	shown := r.Shown(s.clock.Now())
	return &shown, nil
}

func party(r *pb.MandateRequest, c pb.Principal) bool {
	return (c.Role == pb.RoleUser && r.UserID == c.ID) || (c.Role == pb.RoleAgent && r.AgentID == c.ID)
}

var statuses = []string{pb.MandateRequestPending, pb.MandateRequestApproved, pb.MandateRequestRefused, pb.MandateRequestExpired}

// List lists the caller's requests (a user's, or an agent's own), newest
// first, optionally only those with status; without a status each page
// lists its pending requests first, then the others, newest first.
func (s *Service) List(ctx context.Context, caller pb.Principal, status, startingAfter string, limit int) ([]pb.MandateRequest, bool, error) {
	f := pb.MandateRequestFilter{StartingAfter: startingAfter, Limit: limit}
	switch caller.Role {
	case pb.RoleUser:
		f.UserID = caller.ID
	case pb.RoleAgent:
		f.AgentID = caller.ID
	default:
		return nil, false, service.RequireRole(caller, pb.RoleUser, pb.RoleAgent)
	}
	if status != "" && !slices.Contains(statuses, status) {
		return nil, false, pb.Errorf(pb.ErrParameterInvalid, "status", "status must be pending, approved, refused or expired")
	}
	f.Status = status
	if status == pb.MandateRequestExpired {
		f.Status = pb.MandateRequestPending // stored pending, read as expired
	}
	rs, more, err := s.st.ListMandateRequests(ctx, f)
	if err != nil {
		return nil, false, err
	}
	now := s.clock.Now()
	out := make([]pb.MandateRequest, 0, len(rs))
	for _, r := range rs {
		r = r.Shown(now)
		if status == "" || r.Status == status {
			out = append(out, r)
		}
	}
	if status == "" {
		slices.SortStableFunc(out, func(a, b pb.MandateRequest) int {
			return boolInt(b.Status == pb.MandateRequestPending) - boolInt(a.Status == pb.MandateRequestPending)
		})
	}
	return out, more, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Approve (the user) grants the mandate request id asks for, with exactly
// its terms, in the same ledger operation that marks it approved: a
// request is approved once (a second approval, or a refused or expired
// request, is ErrMandateRequestState). Terms that are no longer valid
// (their expires_at has passed, the agent is gone) are refused as POST
// /v1/mandates would refuse them, and nothing changes.
func (s *Service) Approve(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	return s.decide(ctx, caller, idem, id, true)
}

// Refuse (the user) refuses mandate request id; no mandate is granted.
// A request is decided once (ErrMandateRequestState).
func (s *Service) Refuse(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	return s.decide(ctx, caller, idem, id, false)
}

func (s *Service) decide(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, approve bool) service.Result {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return service.Result{Err: err}
	}
	release, err := s.claim(ctx, id)
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	found, err := s.Request(ctx, caller, id)
	if err != nil {
		return service.Result{Err: err}
	}
	// A decided request goes on to the writer as it is, where a retry of
	// the decision replays its answer and any other is refused.
	m := found.Terms
	if approve && found.Status == pb.MandateRequestPending {
		if err := s.mandates.Check(ctx, caller.ID, &m, found.RequireSignature); err != nil {
			return service.Result{Err: err}
		}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		r, err := s.current(tx, id)
		if err == nil && r.UserID != caller.ID {
			err = noRequest(id)
		}
		if err != nil {
			return nil, err
		}
		r = r.Shown(tx.Now())
		if err := undecided(&r); err != nil {
			return nil, err
		}
		now := tx.Now().UTC().Truncate(time.Second)
		r.Status, r.DecidedAt, r.Version = pb.MandateRequestRefused, &now, r.Version+1
		if approve {
			r.Status, r.MandateID = pb.MandateRequestApproved, s.mandates.Grant(tx, caller, m).ID
		}
		ledger.Add(tx, requests, r)
		return &r, nil
	})
}

// undecided returns ErrMandateRequestState unless r is pending.
func undecided(r *pb.MandateRequest) error {
	if r.Status == pb.MandateRequestPending {
		return nil
	}
	return pb.Errorf(pb.ErrMandateRequestState, "", "mandate request %s is %s already; only a pending request can be approved or refused", r.ID, r.Status)
}
