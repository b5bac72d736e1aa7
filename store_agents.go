package paybound

import (
	"context"
	"strings"
	"time"
)

// AgentKeyStore is the storage of agent identity: agents' signing keys,
// and the nonces of their signed requests, remembered to refuse a replay.
type AgentKeyStore interface {
	// AgentKey returns the signing key with thumbprint keyid.
	AgentKey(ctx context.Context, keyid string) (*AgentKey, error)
	// AgentKeys returns an agent's keys, oldest first.
	AgentKeys(ctx context.Context, agentID string) ([]AgentKey, error)
	// NonceSeen reports whether n was recorded (and not yet past its
	// window): see Nonce.Same for when two nonces are the same.
	NonceSeen(ctx context.Context, n Nonce) (bool, error)
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
	// Nonces of signed requests; a nonce already stored (Nonce.Same)
	// refuses the batch.
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
	Expires time.Time // the signed expiry, plus the allowed clock skew
}

// NoncePrefixX402 begins the Nonce of an x402 authorization.
const NoncePrefixX402 = "x402:"

// Same reports whether n and o are one nonce, which a store keeps once.
//
// An HTTP message signature's nonce is the same when its key, nonce and
// expiry are: the expiry is signed, so a replayed request carries the same
// one, and stores key nonces by expiry first, which puts a batch's new
// nonces together at the end of their index instead of a page each
// (migration 0022). An x402 authorization's nonce (NoncePrefixX402) is the
// same whatever its expiry, as EIP-3009's authorization nonces are: a
// payer who signs a second authorization with a used nonce is refused, not
// charged twice.
func (n Nonce) Same(o Nonce) bool {
	return n.KeyID == o.KeyID && n.Nonce == o.Nonce &&
		(strings.HasPrefix(n.Nonce, NoncePrefixX402) || n.Expires.UnixMilli() == o.Expires.UnixMilli())
}
