package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// billingParts is what b writes of Token Pay: each object replaced whole
// (this store's one writer read the version it changes), each event ID
// and usage line inserted.
func billingParts(b *pb.Batch) []part {
	return []part{partOf(sqlstore.BillingObjects, b.BillingObjects, sqlstore.BillingObjectRow),
		partOf(sqlstore.BillingEventIDs, b.UsageEventIDs, sqlstore.UsageEventIDRow),
		partOf(sqlstore.BillingUsage, b.UsageLines, sqlstore.UsageLineRow)}
}
