package sqlstore

import (
	"context"
	"fmt"
	"strings"

	pb "github.com/paybound/paybound"
)

// Agent identity's tables: a key's validity (not_after) and revocation may
// change; a nonce is only ever inserted, so that a replay is refused.
var (
	AgentKeys = NewTable("agent_keys", agentKeyCols,
		` ON CONFLICT (keyid) DO UPDATE SET not_after = excluded.not_after, revoked_at = excluded.revoked_at`)
	Nonces = NewTable("signature_nonces", "keyid, nonce, expires_ms", "")
)

func AgentKeyRow(d []any, k *pb.AgentKey) ([]any, error) {
	return append(d, k.KeyID, k.AgentID, k.PublicKey, k.CreatedAt.Unix(), unixOrNil(k.NotAfter), unixOrNil(k.RevokedAt)), nil
}

func NonceRow(d []any, n *pb.Nonce) ([]any, error) {
	return append(d, n.KeyID, n.Nonce, n.Expires.UnixMilli()), nil
}

// agentKeyCols are the columns scanAgentKey reads.
const agentKeyCols = `keyid, agent_id, public_key, created_at, not_after, revoked_at`

// scanAgentKey decodes a row of agentKeyCols.
func scanAgentKey(r Scanner) (*pb.AgentKey, error) {
	var k pb.AgentKey
	var created int64
	var notAfter, revoked *int64
	if err := r.Scan(&k.KeyID, &k.AgentID, &k.PublicKey, &created, &notAfter, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt, k.NotAfter, k.RevokedAt = unix(created), unixPtr(notAfter), unixPtr(revoked)
	return &k, nil
}

func (r Reads) AgentKey(ctx context.Context, keyid string) (*pb.AgentKey, error) {
	k, err := scanAgentKey(r.DB.QueryRow(ctx, `SELECT `+agentKeyCols+` FROM agent_keys WHERE keyid = $1`, keyid))
	return k, found(err, "agent key", keyid)
}

func (r Reads) AgentKeys(ctx context.Context, agentID string) ([]pb.AgentKey, error) {
	return collect(ctx, r.DB, []pb.AgentKey{}, scanAgentKey,
		`SELECT `+agentKeyCols+` FROM agent_keys WHERE agent_id = $1 ORDER BY created_at, keyid LIMIT 100`, agentID)
}

// X402NonceCond is the condition of the partial index signature_nonces_x402
// (migration 0022), word for word: a query must repeat it for SQLite and
// PostgreSQL to look an x402 nonce up through that index.
const X402NonceCond = "substr(nonce, 1, 5) = 'x402:'"

// NonceSeen looks n up by expiry, key and nonce (the primary key), or an
// x402 nonce by key and nonce (signature_nonces_x402): see pb.Nonce.Same.
func (r Reads) NonceSeen(ctx context.Context, n pb.Nonce) (bool, error) {
	var seen bool
	var err error
	if strings.HasPrefix(n.Nonce, pb.NoncePrefixX402) {
		err = r.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM signature_nonces
			WHERE keyid = $1 AND nonce = $2 AND `+X402NonceCond+`)`, n.KeyID, n.Nonce).Scan(&seen)
	} else {
		err = r.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM signature_nonces
			WHERE expires_ms = $1 AND keyid = $2 AND nonce = $3)`, n.Expires.UnixMilli(), n.KeyID, n.Nonce).Scan(&seen)
	}
	return seen, err
}

// UserAgents reads a page of a user's agents through agents_user
// (user_id, id).
func (r Reads) UserAgents(ctx context.Context, userID, startingAfter string, limit int) ([]pb.Agent, bool, error) {
	var w where
	w.add("user_id = ?", userID)
	if startingAfter != "" {
		w.add("id < ?", startingAfter)
	}
	limit = pb.PageLimit(limit)
	out, err := collect(ctx, r.DB, []pb.Agent{}, scanAgent, `SELECT `+agentCols+` FROM agents`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read the agents of %s: %w", userID, err)
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}
