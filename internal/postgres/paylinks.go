package postgres

import (
	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// payLinkInsert inserts a new link only.
var payLinkInsert = sqlstore.PayLinks.WithUpsert("").Insert()

// queuePayLinks queues what b writes of payment links, in order: a new link
// (version 1) inserted, whose ID another process can't also take; a change
// applied only from the version the writer read, so that the batch fails
// with ErrStoreConflict when another process counted a use meanwhile.
func queuePayLinks(q *pgx.Batch, b *pb.Batch) error {
	for i := range b.PayLinks {
		l := &b.PayLinks[i]
		args, err := sqlstore.PayLinkRow(nil, l)
		if err != nil {
			return err
		}
		if l.Version == 1 {
			q.Queue(payLinkInsert, args...)
			continue
		}
		q.Queue(sqlstore.PayLinkUpdate, l.ID, args[3], l.Version)
	}
	return queueRows(q, sqlstore.LinkPayments, b.LinkPayments, sqlstore.LinkPaymentRow)
}
