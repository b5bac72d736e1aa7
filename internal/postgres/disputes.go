package postgres

import (
	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// queueDisputes queues what b writes of disputes: each replaced whole.
func queueDisputes(q *pgx.Batch, b *pb.Batch) error {
	return queueRows(q, sqlstore.Disputes, b.Disputes, sqlstore.DisputeRow)
}
