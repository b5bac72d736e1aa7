package sqlite

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
	st, err := s.prepared(ctx, `SELECT p.id, p.merchant_id, COALESCE(m.category, ''), p.agent_id, p.mandate_id, p.currency,
		p.amount, p.status, p.decline_code, p.created_at
		FROM payments p LEFT JOIN merchants m ON m.id = p.merchant_id
		WHERE p.payer_id = ? ORDER BY p.id DESC LIMIT ?`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read recent payments: %w", err)
	}
	rows, err := st.QueryContext(ctx, payerID, limit)
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
	err := s.row(ctx, `SELECT EXISTS (SELECT 1 FROM
		(SELECT merchant_id, status FROM payments WHERE payer_id = ? ORDER BY id DESC LIMIT ?)
		WHERE merchant_id = ? AND status IN ('authorized', 'captured', 'refunded'))`,
		payerID, pb.MaxPaidMerchantScan, merchantID).Scan(&paid)
	if err != nil {
		return false, fmt.Errorf("couldn't read whether %s paid %s: %w", payerID, merchantID, err)
	}
	return paid, nil
}

// PayerActivity reads the newest of the payer's payments from q.SinceID on
// through payments_payer (payer_id, id), and tallies them with q.Add (in
// Go: SQLite's sum fails on overflow rather than stop at the largest
// integer). Only one process opens a SQLite store, so risk control does
// not ask it; it is here for the Store contract.
func (s *Store) PayerActivity(ctx context.Context, q pb.ActivityQuery) (pb.Activity, error) {
	st, err := s.prepared(ctx, `SELECT merchant_id, agent_id, mandate_id, amount, status, decline_code
		FROM payments WHERE payer_id = ? AND id >= ? ORDER BY id DESC LIMIT ?`)
	if err != nil {
		return pb.Activity{}, fmt.Errorf("couldn't tally the payments of %s: %w", q.PayerID, err)
	}
	rows, err := st.QueryContext(ctx, q.PayerID, q.SinceID, pb.MaxActivityScan)
	if err != nil {
		return pb.Activity{}, fmt.Errorf("couldn't tally the payments of %s: %w", q.PayerID, err)
	}
	defer rows.Close()
	var a pb.Activity
	for rows.Next() {
		var p pb.RecentPayment
		var status, decline string
		if err := rows.Scan(&p.MerchantID, &p.AgentID, &p.MandateID, &p.Amount, &status, &decline); err != nil {
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

// The risk rules and merchant flags are operator configuration, not
// ledger state: they are written directly through the pool, like
// DeleteNonces, never on the writer's connection, whose transaction the
// ledger writer may hold open; SQLite's busy timeout orders the two.

func (s *Store) RiskRules(ctx context.Context) ([]pb.RiskRule, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, expression, action, priority, created_at FROM risk_rules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the risk rules: %w", err)
	}
	defer rows.Close()
	out := []pb.RiskRule{}
	for rows.Next() {
		var r pb.RiskRule
		var action string
		var created int64
		if err := rows.Scan(&r.Name, &r.Expression, &action, &r.Priority, &created); err != nil {
			return nil, fmt.Errorf("couldn't read the risk rules: %w", err)
		}
		r.Action, r.CreatedAt = pb.RiskDecision(action), time.Unix(created, 0).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) PutRiskRule(ctx context.Context, r pb.RiskRule) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO risk_rules (name, expression, action, priority, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET expression = excluded.expression, action = excluded.action,
		priority = excluded.priority, created_at = excluded.created_at`,
		r.Name, r.Expression, string(r.Action), r.Priority, r.CreatedAt.Unix())
	if err != nil {
		return fmt.Errorf("couldn't store risk rule %s: %w", r.Name, err)
	}
	return nil
}

func (s *Store) DeleteRiskRule(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM risk_rules WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("couldn't delete risk rule %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("couldn't delete risk rule %s: %w", name, err)
	}
	if n == 0 {
		return notFound("risk rule", name)
	}
	return nil
}

func (s *Store) AllMerchantFlags(ctx context.Context) ([]pb.MerchantFlags, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT merchant_id, flags, updated_at FROM merchant_flags ORDER BY merchant_id`)
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
		_, err = s.db.ExecContext(ctx, `DELETE FROM merchant_flags WHERE merchant_id = ?`, f.MerchantID)
	} else {
		flags := f.FlagsColumn()
		_, err = s.db.ExecContext(ctx, `INSERT INTO merchant_flags (merchant_id, flags, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (merchant_id) DO UPDATE SET flags = excluded.flags, updated_at = excluded.updated_at`,
			f.MerchantID, flags, f.UpdatedAt.Unix())
	}
	if err != nil {
		return fmt.Errorf("couldn't store the flags of merchant %s: %w", f.MerchantID, err)
	}
	return nil
}
