package postgres

import (
	"context"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
)

// RecentPayments reads newest first through payments_payer (payer_id, id):
// payment IDs sort by creation time.
func (s *Store) RecentPayments(ctx context.Context, payerID string, limit int) ([]pb.RecentPayment, error) {
	if limit <= 0 || limit > pb.MaxRecentPayments {
		limit = pb.MaxRecentPayments
	}
	rows, err := s.pool.Query(ctx, `SELECT p.id, p.merchant_id, COALESCE(m.category, ''), p.agent_id, p.mandate_id, p.currency,
		p.amount, p.status, p.decline_code, p.created_at
		FROM payments p LEFT JOIN merchants m ON m.id = p.merchant_id
		WHERE p.payer_id = $1 ORDER BY p.id DESC LIMIT $2`, payerID, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read recent payments: %w", err)
	}
	defer rows.Close()
	out := []pb.RecentPayment{}
	for rows.Next() {
		var p pb.RecentPayment
		var status, decline string
		var created int64
		if err := rows.Scan(&p.ID, &p.MerchantID, &p.Category, &p.AgentID, &p.MandateID, &p.Currency,
			&p.Amount, &status, &decline, &created); err != nil {
			return nil, fmt.Errorf("couldn't read recent payments: %w", err)
		}
		p.Status, p.DeclineCode, p.CreatedAt = pb.PaymentStatus(status), pb.Code(decline), time.Unix(created, 0).UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// PaidMerchant looks at the payer's last pb.MaxPaidMerchantScan payments
// only, so that a payer with a long history costs a bounded read.
func (s *Store) PaidMerchant(ctx context.Context, payerID, merchantID string) (bool, error) {
	var paid bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM
		(SELECT merchant_id, status FROM payments WHERE payer_id = $1 ORDER BY id DESC LIMIT $2) AS r
		WHERE r.merchant_id = $3 AND r.status IN ('authorized', 'captured', 'refunded'))`,
		payerID, pb.MaxPaidMerchantScan, merchantID).Scan(&paid)
	if err != nil {
		return false, fmt.Errorf("couldn't read whether %s paid %s: %w", payerID, merchantID, err)
	}
	return paid, nil
}

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

// The risk rules and merchant flags are operator configuration, not
// ledger state: they are written directly through the pool, not in the
// ledger writer's batches.

func (s *Store) RiskRules(ctx context.Context) ([]pb.RiskRule, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, expression, action, priority, created_at FROM risk_rules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the risk rules: %w", err)
	}
	defer rows.Close()
	out := []pb.RiskRule{}
	for rows.Next() {
		var r pb.RiskRule
		var action string
		var priority, created int64
		if err := rows.Scan(&r.Name, &r.Expression, &action, &priority, &created); err != nil {
			return nil, fmt.Errorf("couldn't read the risk rules: %w", err)
		}
		r.Action, r.Priority, r.CreatedAt = pb.RiskDecision(action), int(priority), time.Unix(created, 0).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) PutRiskRule(ctx context.Context, r pb.RiskRule) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO risk_rules (name, expression, action, priority, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET expression = excluded.expression, action = excluded.action,
		priority = excluded.priority, created_at = excluded.created_at`,
		r.Name, r.Expression, string(r.Action), int64(r.Priority), r.CreatedAt.Unix())
	if err != nil {
		return fmt.Errorf("couldn't store risk rule %s: %w", r.Name, err)
	}
	return nil
}

func (s *Store) DeleteRiskRule(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM risk_rules WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("couldn't delete risk rule %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("risk rule", name)
	}
	return nil
}

func (s *Store) AllMerchantFlags(ctx context.Context) ([]pb.MerchantFlags, error) {
	rows, err := s.pool.Query(ctx, `SELECT merchant_id, flags, updated_at FROM merchant_flags ORDER BY merchant_id`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the merchant flags: %w", err)
	}
	defer rows.Close()
	out := []pb.MerchantFlags{}
	for rows.Next() {
		var f pb.MerchantFlags
		var flags string
		var updated int64
		if err := rows.Scan(&f.MerchantID, &flags, &updated); err != nil {
			return nil, fmt.Errorf("couldn't read the merchant flags: %w", err)
		}
		if f.Flags, err = pb.DecodeFlagsColumn(flags); err != nil {
			return nil, fmt.Errorf("merchant %s has unreadable flags: %w", f.MerchantID, err)
		}
		f.UpdatedAt = time.Unix(updated, 0).UTC()
		out = append(out, f)
	}
	return out, rows.Err()
}

func (s *Store) SetMerchantFlags(ctx context.Context, f pb.MerchantFlags) error {
	var err error
	if len(f.Flags) == 0 {
		_, err = s.pool.Exec(ctx, `DELETE FROM merchant_flags WHERE merchant_id = $1`, f.MerchantID)
	} else {
		flags := f.FlagsColumn()
		_, err = s.pool.Exec(ctx, `INSERT INTO merchant_flags (merchant_id, flags, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (merchant_id) DO UPDATE SET flags = excluded.flags, updated_at = excluded.updated_at`,
			f.MerchantID, flags, f.UpdatedAt.Unix())
	}
	if err != nil {
		return fmt.Errorf("couldn't store the flags of merchant %s: %w", f.MerchantID, err)
	}
	return nil
}
