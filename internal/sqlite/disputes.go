package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// disputeParts is what b writes of disputes.
func disputeParts(b *pb.Batch) []part {
	return []part{partOf(sqlstore.Disputes, b.Disputes, sqlstore.DisputeRow)}
}
