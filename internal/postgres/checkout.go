package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// queueCheckout queues what b writes of the checkout. A completion is
// inserted only: a second one for a session or a token violates its unique
// key, which Commit reports as ErrStoreConflict, so the batch is computed
// again from the stored completion and charges nothing twice.
func queueCheckout(q *pgx.Batch, b *pb.Batch) error {
	return errors.Join(
		queueRows(q, sqlstore.Products, b.Products, sqlstore.ProductRow),
		queueRows(q, sqlstore.CheckoutSessions, b.CheckoutSessions, sqlstore.CheckoutSessionRow),
		queueRows(q, sqlstore.AgentCards, b.AgentCards, sqlstore.AgentCardRow),
		queueRows(q, sqlstore.VaultTokens, b.VaultTokens, sqlstore.VaultTokenRow),
		queueRows(q, sqlstore.CheckoutCompletions, b.CheckoutCompletions, sqlstore.CheckoutCompletionRow))
}
