package agentid

import (
	"context"
	"time"

	pb "github.com/paybound/paybound"
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
	now := s.clock.Now()
	out := make([]AgentView, 0, len(agents))
	for _, a := range agents {
		keys, err := s.st.AgentKeys(ctx, a.ID)
		if err != nil {
			return nil, false, err
		}
		v := AgentView{ID: a.ID, Object: "agent", Name: a.Name, UserID: a.UserID, CreatedAt: a.CreatedAt,
			Keys: make([]KeyView, len(keys)), Assurance: pb.AssuranceBearer}
		for i, k := range keys {
			v.Keys[i] = s.keyView(k)
			if k.ValidAt(now) {
				v.Assurance = pb.AssuranceSigned
			}
		}
		out = append(out, v)
	}
	return out, more, nil
}
