package sqlite

import (
	"context"
	"fmt"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// webhookParts is what b writes of webhooks: endpoints upserted, and the
// outbox's events with their objects snapshotted from the batch.
func webhookParts(b *pb.Batch) []part {
	if len(b.WebhookEvents) > 0 {
		if err := b.SnapshotWebhookObjects(); err != nil {
			return []part{{sqlstore.WebhookEvents, 1, func(d []any, _ int) ([]any, error) { return d, err }}}
		}
	}
	return []part{partOf(sqlstore.WebhookEndpoints, b.WebhookEndpoints, sqlstore.WebhookEndpointRow),
		partOf(sqlstore.WebhookEvents, b.WebhookEvents, sqlstore.WebhookEventRow)}
}

// DispatchWebhookEvents runs in a transaction of its own on the pool, not
// the writer's connection (see inTx).
func (s *Store) DispatchWebhookEvents(ctx context.Context, events []string, ds []pb.WebhookDelivery) error {
	return s.inTx(ctx, func(db sqlstore.DB) error { return sqlstore.DispatchWebhookEvents(ctx, db, events, ds) })
}

func (s *Store) RecordWebhookAttempts(ctx context.Context, as []pb.WebhookAttempt) error {
	return s.inTx(ctx, func(db sqlstore.DB) error { return sqlstore.RecordWebhookAttempts(ctx, db, as) })
}

// inTx runs fn in an IMMEDIATE transaction on a connection of the pool:
// it takes the write lock first (waiting for the ledger writer's commit
// through the busy timeout), so that it never fails to upgrade a read
// lock half-way.
func (s *Store) inTx(ctx context.Context, fn func(db sqlstore.DB) error) (err error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("couldn't get a connection: %w", err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("couldn't begin: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := c.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
				err = fmt.Errorf("%w (and couldn't roll back: %v)", err, rerr)
			}
		}
	}()
	if err := fn(conn{q: c}); err != nil {
		return err
	}
	if _, err := c.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	return nil
}
