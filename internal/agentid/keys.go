package agentid

import (
	"context"
	"encoding/json"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// MaxKeys bounds an agent's keys, revoked ones included.
const MaxKeys = 20

// KeyView is an agent key as the API shows it.
type KeyView struct {
	pb.AgentKey
	PublicKey json.RawMessage `json:"public_key"`
	Active    bool            `json:"active"`
}

func (s *Service) keyView(k pb.AgentKey) KeyView {
	return KeyView{AgentKey: k, PublicKey: json.RawMessage(k.PublicKey), Active: k.ValidAt(s.clock.Now())}
}

// ownAgent checks that agent id belongs to user caller.
func (s *Service) ownAgent(ctx context.Context, caller pb.Principal, id string) error {
	if err := service.RequireRole(caller, pb.RoleUser); err != nil {
		return err
	}
	a, err := s.st.Agent(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && a.UserID != caller.ID) {
		return pb.Errorf(pb.ErrNotFound, "id", "you have no agent %s", id)
	}
	return err
}

// AddKey (user) registers another signing key for one of the caller's
// agents. With rotate > 0, the agent's other valid keys stop working after
// that grace period: both sign meanwhile, so the agent can switch without
// a gap.
func (s *Service) AddKey(ctx context.Context, caller pb.Principal, idem *service.Idempotency, agentID string, publicKey []byte, rotate time.Duration) service.Result {
	if err := s.ownAgent(ctx, caller, agentID); err != nil {
		return service.Result{Err: err}
	}
	if a, err := s.st.Agent(ctx, agentID); err != nil {
		return service.Result{Err: err}
	} else if a.RevokedAt != nil {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "id", "agent %s was revoked on %s; create a new agent", agentID, a.RevokedAt.Format(time.RFC3339))}
	}
	if rotate < 0 || rotate > 30*24*time.Hour {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "rotate_after_seconds", "rotate_after_seconds must be between 0 and 30 days")}
	}
	jwk, keyid, err := pb.ParseEd25519JWK(publicKey)
	if err != nil {
		return service.Result{Err: err}
	}
	res := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		taken, err := tx.HasAgentKey(keyid)
		if err != nil {
			return nil, err
		}
		if taken {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "public_key", "this key is already registered to an agent")
		}
		keys, err := s.st.AgentKeys(tx.Context(), agentID)
		if err != nil {
			return nil, err
		}
		if len(keys) >= MaxKeys {
			return nil, pb.Errorf(pb.ErrParameterInvalid, "public_key", "an agent has at most %d keys", MaxKeys)
		}
		now := tx.Now().Truncate(time.Second)
		if rotate > 0 {
			until := now.Add(rotate)
			for _, k := range keys {
				if k.ValidAt(now) && (k.NotAfter == nil || k.NotAfter.After(until)) {
					k.NotAfter = &until
					tx.AddAgentKey(k)
				}
			}
		}
		k := pb.AgentKey{KeyID: keyid, AgentID: agentID, PublicKey: jwk, CreatedAt: now}
		tx.AddAgentKey(k)
		service.LogKey(tx, caller, pb.LogAgentKeyAdded, k)
		v := s.keyView(k)
		return &v, nil
	})
	s.forget(res, agentID) // a rotation ends the other keys
	return res
}

// forget has the core forget what it remembers of agentID's keys once res
// changed them (its API keys, and AgentKeys, which the checkout, signed
// requests and the x402 facilitator read).
func (s *Service) forget(res service.Result, agentID string) {
	if res.Err == nil {
		s.core.ForgetPrincipal(agentID)
	}
}

// RevokeKey (user) revokes one of an agent's keys at once.
func (s *Service) RevokeKey(ctx context.Context, caller pb.Principal, idem *service.Idempotency, agentID, keyid string) service.Result {
	if err := s.ownAgent(ctx, caller, agentID); err != nil {
		return service.Result{Err: err}
	}
	res := s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		k, err := s.st.AgentKey(tx.Context(), keyid)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && k.AgentID != agentID) {
			return nil, pb.Errorf(pb.ErrNotFound, "keyid", "agent %s has no key %s", agentID, keyid)
		}
		if err != nil {
			return nil, err
		}
		if k.RevokedAt == nil {
			now := tx.Now().Truncate(time.Second)
			k.RevokedAt = &now
			tx.AddAgentKey(*k)
			service.LogKey(tx, caller, pb.LogAgentKeyRevoked, *k)
		}
		v := s.keyView(*k)
		return &v, nil
	})
	s.forget(res, agentID)
	return res
}

// Keys (user) lists an agent's keys.
func (s *Service) Keys(ctx context.Context, caller pb.Principal, agentID string) ([]KeyView, error) {
	if err := s.ownAgent(ctx, caller, agentID); err != nil {
		return nil, err
	}
	keys, err := s.st.AgentKeys(ctx, agentID)
	if err != nil {
		return nil, err
	}
	out := make([]KeyView, len(keys))
	for i, k := range keys {
		out[i] = s.keyView(k)
	}
	return out, nil
}
