package postgres

import (
	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// mandateRequestInsert inserts a new request only.
var mandateRequestInsert = sqlstore.MandateRequests.WithUpsert("").Insert()

// queueMandateRequests queues what b writes of mandate requests, in order:
// a new one (version 1) inserted; a decision applied only over the version
// the writer read, so that two processes cannot both decide a request (the
// batch fails with ErrStoreConflict and is recomputed on fresh state).
func queueMandateRequests(q *pgx.Batch, b *pb.Batch) error {
	for i := range b.MandateRequests {
		r := &b.MandateRequests[i]
		args, err := sqlstore.MandateRequestRow(nil, r)
		if err != nil {
			return err
		}
		if r.Version == 1 {
			q.Queue(mandateRequestInsert, args...)
			continue
		}
		q.Queue(sqlstore.MandateRequestUpdate, r.ID, r.Status, args[5], r.Version)
	}
	return nil
}
