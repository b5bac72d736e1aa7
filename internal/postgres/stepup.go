package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// queueStepUp queues what b writes of step-up: the wrong codes, added to
// the stored counts, passkeys and TOTP factors.
func queueStepUp(q *pgx.Batch, b *pb.Batch) error {
	if len(b.CodeFailures) > 0 {
		// One row per confirmation: an upsert may not touch a row twice.
		n := map[string]int64{}
		for _, id := range b.CodeFailures {
			n[id]++
		}
		ids, counts := make([]string, 0, len(n)), make([]int64, 0, len(n))
		for id, c := range n {
			ids, counts = append(ids, id), append(counts, c)
		}
		q.Queue(`INSERT INTO confirmation_failures AS f (confirmation_id, failures) SELECT * FROM unnest($1::text[], $2::bigint[])
			ON CONFLICT (confirmation_id) DO UPDATE SET failures = f.failures + excluded.failures`, ids, counts)
	}
	return errors.Join(queueRows(q, sqlstore.Passkeys, b.Passkeys, sqlstore.PasskeyRow),
		queueRows(q, sqlstore.TOTP, b.TOTP, sqlstore.TOTPRow))
}
