package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// checkoutParts is what b writes of the checkout.
func checkoutParts(b *pb.Batch) []part {
	return []part{
		partOf(sqlstore.Products, b.Products, sqlstore.ProductRow),
		partOf(sqlstore.CheckoutSessions, b.CheckoutSessions, sqlstore.CheckoutSessionRow),
		partOf(sqlstore.AgentCards, b.AgentCards, sqlstore.AgentCardRow),
		partOf(sqlstore.VaultTokens, b.VaultTokens, sqlstore.VaultTokenRow),
		partOf(sqlstore.CheckoutCompletions, b.CheckoutCompletions, sqlstore.CheckoutCompletionRow),
	}
}
