package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// x402Parts is what b writes of x402 tabs: each tab replaced whole (this
// store's one writer read the version it changes).
func x402Parts(b *pb.Batch) []part {
	return []part{partOf(sqlstore.X402Tabs, b.Tabs, sqlstore.X402TabRow)}
}
