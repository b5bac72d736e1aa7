package postgres

import (
	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// x402TabInsert inserts a new tab only.
var x402TabInsert = sqlstore.X402Tabs.WithUpsert("").Insert()

// queueX402 queues what b writes of x402 tabs, in order: a new tab
// (version 1) inserted, whose ID and deposit another process can't also
// take; a change applied only from the version the writer read, so that
// the batch fails with ErrStoreConflict when another process changed the
// tab meanwhile.
func queueX402(q *pgx.Batch, b *pb.Batch) error {
	for i := range b.Tabs {
		t := &b.Tabs[i]
		args, err := sqlstore.X402TabRow(nil, t)
		if err != nil {
			return err
		}
		if t.Version == 1 {
			q.Queue(x402TabInsert, args...)
			continue
		}
		q.Queue(sqlstore.X402TabUpdate, t.ID, args[3], args[4], args[6], t.Version)
	}
	return nil
}
