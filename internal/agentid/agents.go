package agentid

import (
	"context"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// AgentView is one of a user's agents as the list shows it: its signing
// keys and the assurance its requests can carry.
type AgentView struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"` // "agent"
	Name      string    `json:"name"`
	UserID    string    `json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
	Keys      []KeyView `json:"keys"`
	// Assurance is the strongest proof the agent's requests can carry
	// now: "signed" while it has a key in force (RFC 9421 signatures),
	// else "bearer" (its API key alone).
	Assurance pb.Assurance `json:"assurance"`
	// RevokedAt is when its user revoked it (RevokeAgent); nil while it
	// is in force.
	RevokedAt *time.Time `json:"revoked_at"`
}

// ListAgents (user) lists the caller's agents, newest first, a page at a
// time: startingAfter is the last agent ID of the previous page. An agent
// lists itself alone.
func (s *Service) ListAgents(ctx context.Context, caller pb.Principal, startingAfter string, limit int) ([]AgentView, bool, error) {
	if err := service.RequireRole(caller, pb.RoleUser, pb.RoleAgent); err != nil {
		return nil, false, err
	}
	var agents []pb.Agent
	more := false
	if caller.Role == pb.RoleAgent {
		a, err := s.st.Agent(ctx, caller.ID)
		if err != nil {
			return nil, false, err
		}
		if startingAfter == "" {
			agents = []pb.Agent{*a}
		}
	} else {
		var err error
		if agents, more, err = s.st.UserAgents(ctx, caller.ID, startingAfter, limit); err != nil {
			return nil, false, err
		}
	}
	out := make([]AgentView, 0, len(agents))
	for _, a := range agents {
		keys, err := s.st.AgentKeys(ctx, a.ID)
		if err != nil {
			return nil, false, err
		}
		out = append(out, s.view(a, keys))
	}
	return out, more, nil
}

// view is agent a with its keys, as the API shows it.
func (s *Service) view(a pb.Agent, keys []pb.AgentKey) AgentView {
	now := s.clock.Now()
	v := AgentView{ID: a.ID, Object: "agent", Name: a.Name, UserID: a.UserID, CreatedAt: a.CreatedAt,
		Keys: make([]KeyView, len(keys)), Assurance: pb.AssuranceBearer, RevokedAt: a.RevokedAt}
	for i, k := range keys {
		v.Keys[i] = s.keyView(k)
		if k.ValidAt(now) && a.RevokedAt == nil {
			v.Assurance = pb.AssuranceSigned
		}
	}
	return v
}

// agents picks the batch's list of agents.
func agents(b *pb.Batch) *[]pb.Agent { return &b.Agents }

// agentKeys picks the batch's list of agent keys.
func agentKeys(b *pb.Batch) *[]pb.AgentKey { return &b.AgentKeys }

// RevokeAgent (user) revokes one of the caller's agents for good, in one
// ledger operation: its row is marked revoked, so that its API key
// authenticates nothing (the core looks keys up again: at once on this
// process, within its key cache's lifetime on others), and each of its
// keys still in force is revoked, so that its signed requests and x402
// authorizations verify nothing; each change is logged. Its mandates stay
// as they are, unusable by anyone else. Revoking a revoked agent changes
// nothing and answers it as it is.
func (s *Service) RevokeAgent(ctx context.Context, caller pb.Principal, idem *service.Idempotency, agentID string) service.Result {
	if err := s.ownAgent(ctx, caller, agentID); err != nil {
		return service.Result{Err: err}
	}
	res := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		a, ok := ledger.Latest(tx, agents, func(a *pb.Agent) string { return a.ID }, agentID)
		if !ok {
			stored, err := s.st.Agent(tx.Context(), agentID)
			if err != nil {
				return nil, err
			}
			a = *stored
		}
		keys, err := s.st.AgentKeys(tx.Context(), agentID)
		if err != nil {
			return nil, err
		}
		for i := range keys { // as this batch and the one committing left them
			if k, ok := ledger.Latest(tx, agentKeys, func(k *pb.AgentKey) string { return k.KeyID }, keys[i].KeyID); ok {
				keys[i] = k
			}
		}
		if a.RevokedAt == nil {
			now := tx.Now().Truncate(time.Second)
			a.RevokedAt = &now
			tx.AddAgent(a)
			service.LogRecord(tx, a.ID, pb.ActorOf(caller), pb.LogAgentRevoked, struct {
				RevokedAt time.Time `json:"revoked_at"`
			}{now})
			for i := range keys {
				if keys[i].RevokedAt == nil {
					keys[i].RevokedAt = &now
					tx.AddAgentKey(keys[i])
					service.LogKey(tx, caller, pb.LogAgentKeyRevoked, keys[i])
				}
			}
		}
		v := s.view(a, keys)
		return &v, nil
	})
	s.forget(res, agentID)
	return res
}
