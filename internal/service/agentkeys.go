package service

import (
	"context"
	"slices"

	pb "github.com/paybound/paybound"
)

// cachedAgentKeys is an agent's signing keys as AgentKeys read them, at
// unix nanoseconds at. On a store this process alone writes (SQLite),
// every change of an agent's keys goes through agentid, which calls
// ForgetPrincipal once it has committed, and that drops the agent's entry.
type cachedAgentKeys struct {
	keys []pb.AgentKey
	at   int64
}

// AgentKeys returns agentID's signing keys, oldest first, as the store
// holds them. On a store that only this process writes they come from
// memory once read, for keyCacheTTL at most (a bound in case a change
// escaped ForgetPrincipal); on a shared store (PostgreSQL), where another
// process may revoke a key, always from the store. delegate_payment's
// signature, signed requests and x402 authorizations are checked against
// them (SigningKey).
func (s *Service) AgentKeys(ctx context.Context, agentID string) ([]pb.AgentKey, error) {
	if _, shared := s.st.(pb.SharedStore); shared {
		return s.st.AgentKeys(ctx, agentID)
	}
	now := s.clock.Now().UnixNano()
	e, gen, ok := s.agentKeys.Get(agentID)
	if ok && now >= e.at && now-e.at < int64(keyCacheTTL) {
		return slices.Clone(e.keys), nil
	}
	keys, err := s.st.AgentKeys(ctx, agentID)
	if err != nil || len(keys) == 0 {
		return keys, err // an agent without keys yet is not remembered
	}
	s.agentKeys.Keep(gen, cachedAgentKeys{keys: slices.Clone(keys), at: now}, agentID)
	return keys, nil
}

// SigningKey returns the key with thumbprint keyid, as AgentKeys has it,
// and its owner: an agent with only ID and UserID set, which never change
// (a keyid is registered once), so they are remembered once found. It
// returns ErrNotFound when no agent has the key. The caller checks that
// the key may sign (pb.AgentKey.ValidAt).
func (s *Service) SigningKey(ctx context.Context, keyid string) (*pb.Agent, *pb.AgentKey, error) {
	if o, ok := s.keyOwners.Load(keyid); ok {
		o := o.(*pb.Agent)
		keys, err := s.AgentKeys(ctx, o.ID)
		if err != nil {
			return nil, nil, err
		}
		for i := range keys {
			if keys[i].KeyID == keyid {
				return &pb.Agent{ID: o.ID, UserID: o.UserID}, &keys[i], nil
			}
		}
	}
	k, err := s.st.AgentKey(ctx, keyid)
	if err != nil {
		return nil, nil, err
	}
	a, err := s.st.Agent(ctx, k.AgentID)
	if err != nil {
		return nil, nil, err
	}
	if s.nKeyOwners.Add(1) <= maxKeyCache {
		s.keyOwners.Store(keyid, &pb.Agent{ID: a.ID, UserID: a.UserID})
	}
	return &pb.Agent{ID: a.ID, UserID: a.UserID}, k, nil
}
