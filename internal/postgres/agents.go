package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// queueAgentKeys queues what b writes of agent identity: keys and nonces
// (a nonce another process stored refuses the batch).
func queueAgentKeys(q *pgx.Batch, b *pb.Batch) error {
	return errors.Join(queueRows(q, sqlstore.AgentKeys, b.AgentKeys, sqlstore.AgentKeyRow),
		queueRows(q, sqlstore.Nonces, b.Nonces, sqlstore.NonceRow))
}

func (s *Store) DeleteNonces(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM signature_nonces WHERE (expires_ms, keyid, nonce) IN
		(SELECT expires_ms, keyid, nonce FROM signature_nonces WHERE expires_ms < $1 ORDER BY expires_ms LIMIT $2)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
