package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// billingObjectInsert inserts a new object only.
var billingObjectInsert = sqlstore.BillingObjects.WithUpsert("").Insert()

// queueBilling queues what b writes of Token Pay, in order: a new object
// (version 1) inserted, whose ID another process can't also take; a change
// applied only from the version the writer read, so that the batch fails
// with ErrStoreConflict when another process changed the object (a grant
// drawn down, a reservation settled) meanwhile; the event IDs, whose key
// refuses one another process stored first; and the usage lines.
func queueBilling(q *pgx.Batch, b *pb.Batch) error {
	for i := range b.BillingObjects {
		o := &b.BillingObjects[i]
		args, err := sqlstore.BillingObjectRow(nil, o)
		if err != nil {
			return err
		}
		if o.Version == 1 {
			q.Queue(billingObjectInsert, args...)
			continue
		}
		q.Queue(sqlstore.BillingObjectUpdate, o.ID, args[5], o.Version, args[6])
	}
	if err := queueRows(q, sqlstore.BillingEventIDs, b.UsageEventIDs, sqlstore.UsageEventIDRow); err != nil {
		return err
	}
	return queueRows(q, sqlstore.BillingUsagePacks, sqlstore.UsagePacks(b.UsageLines), sqlstore.UsagePackArgs)
}

// UsageEventsSeen looks a batch's event IDs up as one array parameter:
// one statement text, where a list of up to 1,000 placeholders is parsed
// each time.
func (s *Store) UsageEventsSeen(ctx context.Context, provider string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT event_id FROM billing_event_ids WHERE provider_id = $1 AND event_id = ANY($2)`, provider, ids)
	if err != nil {
		return nil, fmt.Errorf("couldn't look usage events up: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("couldn't look usage events up: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}
