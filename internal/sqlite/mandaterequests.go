package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// mandateRequestParts is what b writes of mandate requests: each replaced
// whole (this store's one writer read the version it changes).
func mandateRequestParts(b *pb.Batch) []part {
	return []part{partOf(sqlstore.MandateRequests, b.MandateRequests, sqlstore.MandateRequestRow)}
}
