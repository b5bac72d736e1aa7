package sqlite

import (
	"context"
	"fmt"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// PayerActivity reads the newest of the payer's payments from q.SinceID on
// (sqlstore.PartyPayments), and tallies them with q.Add (in Go: SQLite's
// sum fails on overflow rather than stop at the largest integer). Only one
// process opens a SQLite store, so risk control does not ask it; it is
// here for the Store contract.
func (s *Store) PayerActivity(ctx context.Context, q pb.ActivityQuery) (pb.Activity, error) {
	query, args := sqlstore.PartyPayments(true, "id, merchant_id, agent_id, mandate_id, amount, status, decline_code",
		"payer_id", q.PayerID, ">=", q.SinceID, pb.MaxActivityScan)
	st, err := s.prepared(ctx, query)
	if err != nil {
		return pb.Activity{}, fmt.Errorf("couldn't tally the payments of %s: %w", q.PayerID, err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return pb.Activity{}, fmt.Errorf("couldn't tally the payments of %s: %w", q.PayerID, err)
	}
	defer rows.Close()
	var a pb.Activity
	for rows.Next() {
		var p pb.RecentPayment
		var status, decline string
		if err := rows.Scan(&p.ID, &p.MerchantID, &p.AgentID, &p.MandateID, &p.Amount, &status, &decline); err != nil {
			return pb.Activity{}, fmt.Errorf("couldn't tally the payments of %s: %w", q.PayerID, err)
		}
		p.Status, p.DeclineCode = pb.PaymentStatus(status), pb.Code(decline)
		q.Add(&a, &p)
	}
	if err := rows.Err(); err != nil {
		return pb.Activity{}, fmt.Errorf("couldn't tally the payments of %s: %w", q.PayerID, err)
	}
	return a, nil
}
