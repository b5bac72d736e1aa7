package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// queueWebhooks queues what b writes of webhooks: endpoints upserted, and
// the outbox's events with their objects snapshotted from the batch.
func queueWebhooks(q *pgx.Batch, b *pb.Batch) error {
	if len(b.WebhookEvents) > 0 {
		if err := b.SnapshotWebhookObjects(); err != nil {
			return err
		}
	}
	if err := queueRows(q, sqlstore.WebhookEndpoints, b.WebhookEndpoints, sqlstore.WebhookEndpointRow); err != nil {
		return err
	}
	return queueRows(q, sqlstore.WebhookEvents, b.WebhookEvents, sqlstore.WebhookEventRow)
}

func (s *Store) DispatchWebhookEvents(ctx context.Context, events []string, ds []pb.WebhookDelivery) (out []string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out, err = sqlstore.DispatchWebhookEvents(ctx, conn{tx}, events, ds)
		return err
	})
	return out, err
}

func (s *Store) ClaimWebhookDeliveries(ctx context.Context, cs []pb.WebhookClaim, now, until time.Time) (out []pb.WebhookDelivery, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out, err = sqlstore.ClaimWebhookDeliveries(ctx, conn{tx}, cs, now, until)
		return err
	})
	return out, err
}

func (s *Store) RecordWebhookAttempts(ctx context.Context, as []pb.WebhookAttempt) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return sqlstore.RecordWebhookAttempts(ctx, conn{tx}, as) })
}
