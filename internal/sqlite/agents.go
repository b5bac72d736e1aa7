package sqlite

import (
	"context"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// agentParts is what b writes of agent identity: keys and nonces.
func agentParts(b *pb.Batch) []part {
	return []part{
		partOf(sqlstore.AgentKeys, b.AgentKeys, sqlstore.AgentKeyRow),
		partOf(sqlstore.Nonces, b.Nonces, sqlstore.NonceRow),
	}
}

func (s *Store) DeleteNonces(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM signature_nonces WHERE (expires_ms, keyid, nonce) IN
		(SELECT expires_ms, keyid, nonce FROM signature_nonces WHERE expires_ms < ? ORDER BY expires_ms LIMIT ?)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
