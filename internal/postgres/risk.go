package postgres

import (
	"context"
	"fmt"

	pb "github.com/paybound/paybound"
)

// PayerActivity reads the newest of the payer's payments from q.SinceID on
// through payments_payer (payer_id, id), and tallies them in the query (as
// q.Add does), so that one row comes back: it runs on every agent payment
// attempt of a process that shares the database.
func (s *Store) PayerActivity(ctx context.Context, q pb.ActivityQuery) (pb.Activity, error) {
	var a pb.Activity
	var paid int64
	err := s.pool.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE r.ok AND r.agent), LEAST(COALESCE(sum(r.amount) FILTER (WHERE r.ok AND r.agent), 0), 9223372036854775807)::bigint,
		count(*) FILTER (WHERE r.ok AND r.mandate), LEAST(COALESCE(sum(r.amount) FILTER (WHERE r.ok AND r.mandate), 0), 9223372036854775807)::bigint,
		count(*) FILTER (WHERE r.ok AND r.payee), LEAST(COALESCE(sum(r.amount) FILTER (WHERE r.ok AND r.payee), 0), 9223372036854775807)::bigint,
		count(*) FILTER (WHERE NOT r.ok AND r.agent AND r.decline_code <> 'risk_blocked' AND NOT (r.payee AND r.amount = $6)),
		count(*) FILTER (WHERE r.payee AND r.status IN ('authorized', 'captured', 'refunded'))
		FROM (SELECT amount, status, decline_code, status <> 'declined' AS ok,
			$3 <> '' AND agent_id = $3 AS agent, $4 <> '' AND mandate_id = $4 AS mandate, merchant_id = $5 AS payee
			FROM payments WHERE payer_id = $1 AND id >= $2 ORDER BY id DESC LIMIT $7) AS r`,
		q.PayerID, q.SinceID, q.AgentID, q.MandateID, q.MerchantID, q.Amount, pb.MaxActivityScan).Scan(&a.Scanned,
		&a.Agent.Count, &a.Agent.Sum, &a.Mandate.Count, &a.Mandate.Sum, &a.Payee.Count, &a.Payee.Sum, &a.Declines, &paid)
	if err != nil {
		return pb.Activity{}, fmt.Errorf("couldn't tally the payments of %s: %w", q.PayerID, err)
	}
	a.PaidMerchant = paid > 0
	return a, nil
}
