package service

import (
	"context"
	"slices"
	"sync"

	pb "github.com/paybound/paybound"
)

// agentKeyCache remembers agents' signing keys for AgentKeys, on a store
// this process alone writes (SQLite): there every change of an agent's
// keys goes through agentid, which calls ForgetPrincipal once it has
// committed, and that drops the agent's entry.
type agentKeyCache struct {
	mu   sync.Mutex
	gen  uint64 // one more at each ForgetPrincipal
	keys map[string]cachedAgentKeys
}

type cachedAgentKeys struct {
	keys []pb.AgentKey
	at   int64 // unix nanoseconds of the read
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
	c := &s.agentKeys
	c.mu.Lock()
	e, ok := c.keys[agentID]
	gen := c.gen
	c.mu.Unlock()
	if ok && now >= e.at && now-e.at < int64(keyCacheTTL) {
		return slices.Clone(e.keys), nil
	}
	keys, err := s.st.AgentKeys(ctx, agentID)
	if err != nil || len(keys) == 0 {
		return keys, err // an agent without keys yet is not remembered
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return keys, nil // a change was committed while this read ran: it may predate it
	}
	if c.keys == nil || len(c.keys) >= maxKeyCache {
		c.keys = map[string]cachedAgentKeys{}
	}
	c.keys[agentID] = cachedAgentKeys{keys: slices.Clone(keys), at: now}
	return keys, nil
}

// forget drops what AgentKeys remembers of id.
func (c *agentKeyCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.keys, id)
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
