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
}

// Nonce is a signed request's nonce, remembered until Expires.
type Nonce struct {
	KeyID   string
	Nonce   string
	Expires time.Time
}
