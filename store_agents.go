package paybound

import (
	"context"
	"time"
)

// AgentKeyStore is the storage of agent identity: agents' signing keys,
// and the nonces of their signed requests, remembered to refuse a replay.
type AgentKeyStore interface {
	// AgentKey returns the signing key with thumbprint keyid.
	AgentKey(ctx context.Context, keyid string) (*AgentKey, error)
	// AgentKeys returns an agent's keys, oldest first.
	AgentKeys(ctx context.Context, agentID string) ([]AgentKey, error)
	// NonceSeen reports whether a signed request with keyid and nonce was
	// recorded (and not yet past its window).
	NonceSeen(ctx context.Context, keyid, nonce string) (bool, error)
	// DeleteNonces removes nonces whose window closed before cutoff, at most limit.
	DeleteNonces(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// UserAgents returns a page of a user's agents, newest first: those
	// with an ID below startingAfter (when set), at most PageLimit(limit),
	// and whether there are more.
	UserAgents(ctx context.Context, userID, startingAfter string, limit int) (_ []Agent, hasMore bool, _ error)
}

// AgentKeyPart is agent identity's share of a Batch: agents' signing keys
// and the nonces of their signed requests.
type AgentKeyPart struct {
	// Nonces of signed requests; a nonce already stored refuses the batch.
	Nonces []Nonce
	// AgentKeys are inserted or have their not_after and revocation updated.
	AgentKeys []AgentKey
}

// Empty reports whether p writes nothing.
func (p *AgentKeyPart) Empty() bool { return len(p.Nonces)+len(p.AgentKeys) == 0 }

// Nonce is a signed request's nonce, remembered until Expires.
type Nonce struct {
	KeyID   string
	Nonce   string
	Expires time.Time
}
