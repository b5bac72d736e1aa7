package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// payLinkParts is what b writes of payment links: each link replaced whole
// (this store's one writer read the version it changes), each link's
// payment inserted.
func payLinkParts(b *pb.Batch) []part {
	return []part{partOf(sqlstore.PayLinks, b.PayLinks, sqlstore.PayLinkRow),
		partOf(sqlstore.LinkPayments, b.LinkPayments, sqlstore.LinkPaymentRow)}
}
