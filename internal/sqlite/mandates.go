package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

var (
	// With one writer, a mandate's revocation is simply overwritten (the
	// service revokes a mandate once).
	tMandates = sqlstore.Mandates.WithUpsert(` ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at`)
	tUsage    = sqlstore.NewTable("mandate_usage", "mandate_id, period_key, spent, payments, cap_amount, cap_payments",
		` ON CONFLICT (mandate_id, period_key) DO UPDATE SET spent = excluded.spent, payments = excluded.payments`)
)

// mandateParts is what b writes of mandates: the mandates, and their usage
// rows with their final values.
func mandateParts(b *pb.Batch) []part {
	return []part{
		partOf(tMandates, b.Mandates, sqlstore.MandateRow),
		partOf(tUsage, b.Usage, func(d []any, u *pb.MandateUsageRow) ([]any, error) {
			return append(d, u.MandateID, u.PeriodKey, u.Spent, u.Payments, u.CapAmount, u.CapPayments), nil
		}),
	}
}
