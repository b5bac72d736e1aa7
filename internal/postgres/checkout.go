package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// sessionInsert inserts a new session only.
var sessionInsert = sqlstore.CheckoutSessions.WithUpsert("").Insert()

// queueSessions queues the batch's sessions, in order: a new one (version
// 1) inserted, whose ID another process can't also take; a change applied
// only over the version the writer read, so that the batch fails with
// ErrStoreConflict, and is computed again on what the store holds, when
// another process wrote the session meanwhile.
func queueSessions(q *pgx.Batch, sessions []pb.CheckoutSession) error {
	for i := range sessions {
		s := &sessions[i]
		args, err := sqlstore.CheckoutSessionRow(nil, s)
		if err != nil {
			return err
		}
		if s.Version == 1 {
			q.Queue(sessionInsert, args...)
			continue
		}
		q.Queue(sqlstore.CheckoutSessionUpdate, s.ID, string(s.Status), args[4], s.Version)
	}
	return nil
}

// queueCheckout queues what b writes of the checkout. A completion is
// inserted only: a second one for a session or a token violates its unique
// key, which Commit reports as ErrStoreConflict, so the batch is computed
// again from the stored completion and charges nothing twice.
func queueCheckout(q *pgx.Batch, b *pb.Batch) error {
	return errors.Join(
		queueRows(q, sqlstore.Products, b.Products, sqlstore.ProductRow),
		queueSessions(q, b.CheckoutSessions),
		queueRows(q, sqlstore.AgentCards, b.AgentCards, sqlstore.AgentCardRow),
		queueRows(q, sqlstore.VaultTokens, b.VaultTokens, sqlstore.VaultTokenRow),
		queueRows(q, sqlstore.CheckoutCompletions, b.CheckoutCompletions, sqlstore.CheckoutCompletionRow))
}
