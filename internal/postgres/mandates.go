package postgres

import (
	"sort"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// A mandate's first revocation stays: a process that revokes it again
// from a stale cache does not move it.
var tMandates = sqlstore.Mandates.WithUpsert(` ON CONFLICT (id) DO UPDATE SET revoked_at = COALESCE(mandates.revoked_at, excluded.revoked_at)`)

// queueMandates queues what b writes of mandates, after checking that the
// mandates its operations relied on are still usable: the mandates, and
// the changes to their usage rows.
func queueMandates(q *pgx.Batch, b *pb.Batch) error {
	if len(b.MandatesChecked) > 0 {
		// Before this batch's own revocations: an operation earlier in the
		// batch may rely on a mandate that a later one revokes. FOR SHARE
		// orders this batch and a concurrent revocation: whichever commits
		// second sees the other, so no payment relies on a mandate whose
		// revocation was acknowledged before it.
		q.Queue(`SELECT 1 FROM mandates WHERE id = ANY($1) ORDER BY id FOR SHARE`, b.MandatesChecked)
		q.Queue(`SELECT 1 / (CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END) FROM mandates WHERE id = ANY($1)`, b.MandatesChecked)
	}
	if err := queueRows(q, tMandates, b.Mandates, sqlstore.MandateRow); err != nil {
		return err
	}
	queueUsage(q, b)
	return nil
}

// queueUsage adds the batch's changes to its mandate usage rows, creating
// those that are missing, in key order (so concurrent batches lock rows in
// the same order); the within_budget and within_payments constraints refuse
// a reservation past a cap. The rows as stored after it refresh the
// writer's cache.
func queueUsage(q *pgx.Batch, b *pb.Batch) {
	order := make([]int, len(b.Usage))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool {
		a, c := b.Usage[order[x]], b.Usage[order[y]]
		return a.MandateID < c.MandateID || (a.MandateID == c.MandateID && a.PeriodKey < c.PeriodKey)
	})
	for _, i := range order {
		u, c := b.Usage[i], b.UsageChanges[i]
		// Two statements: a CHECK constraint judges the row an upsert would
		// insert before it finds the conflict, and a change may be negative.
		q.Queue(`INSERT INTO mandate_usage (mandate_id, period_key, spent, payments, cap_amount, cap_payments)
			VALUES ($1, $2, 0, 0, $3, $4) ON CONFLICT (mandate_id, period_key) DO NOTHING`,
			u.MandateID, u.PeriodKey, u.CapAmount, u.CapPayments)
		q.Queue(`UPDATE mandate_usage SET spent = spent + $3, payments = payments + $4 WHERE mandate_id = $1 AND period_key = $2
			RETURNING spent, payments, cap_amount, cap_payments`,
			u.MandateID, u.PeriodKey, c.Spent, c.Payments).QueryRow(func(r pgx.Row) error {
			f := pb.MandateUsageRow{MandateID: u.MandateID, PeriodKey: u.PeriodKey}
			if err := r.Scan(&f.Spent, &f.Payments, &f.CapAmount, &f.CapPayments); err != nil {
				return err
			}
			b.FreshUsage = append(b.FreshUsage, f)
			return nil
		})
	}
}
