package sqlstore

import (
	"context"
	"fmt"
	"strconv"

	pb "github.com/paybound/paybound"
)

// RecentPayments reads the payer's newest payments (PartyPayments):
// payment IDs sort by creation time.
func (r Reads) RecentPayments(ctx context.Context, payerID string, limit int) ([]pb.RecentPayment, error) {
	if limit <= 0 || limit > pb.MaxRecentPayments {
		limit = pb.MaxRecentPayments
	}
	q, args := PartyPayments(r.Parties, `id, merchant_id, agent_id, mandate_id, currency, amount, status, decline_code, created_at`,
		"payer_id", payerID, "", "", limit)
	out, err := collect(ctx, r.DB, []pb.RecentPayment{}, func(row Scanner) (*pb.RecentPayment, error) {
		var p pb.RecentPayment
		var status, decline string
		var created int64
		if err := row.Scan(&p.ID, &p.MerchantID, &p.AgentID, &p.MandateID, &p.Currency,
			&p.Amount, &status, &decline, &created, &p.Category); err != nil {
			return nil, err
		}
		p.Status, p.DeclineCode, p.CreatedAt = pb.PaymentStatus(status), pb.Code(decline), unix(created)
		return &p, nil
	}, `SELECT p.*, COALESCE(m.category, '') FROM (`+q+`) AS p LEFT JOIN merchants m ON m.id = p.merchant_id ORDER BY p.id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read recent payments: %w", err)
	}
	return out, nil
}

// PaidMerchant looks at the payer's last pb.MaxPaidMerchantScan payments
// only, so that a payer with a long history costs a bounded read.
func (r Reads) PaidMerchant(ctx context.Context, payerID, merchantID string) (bool, error) {
	q, args := PartyPayments(r.Parties, "id, merchant_id, status", "payer_id", payerID, "", "", pb.MaxPaidMerchantScan)
	var paid bool
	err := r.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM (`+q+`) AS r
		WHERE r.merchant_id = $`+strconv.Itoa(len(args)+1)+` AND r.status IN ('authorized', 'captured', 'refunded'))`,
		append(args, merchantID)...).Scan(&paid)
	if err != nil {
		return false, fmt.Errorf("couldn't read whether %s paid %s: %w", payerID, merchantID, err)
	}
	return paid, nil
}

// The risk rules and merchant flags are operator configuration, not
// ledger state: a store writes them directly through its connections,
// never in the ledger writer's batches (nor, in SQLite, on the writer's
// connection, whose transaction the writer may hold open: SQLite's busy
// timeout orders the two).

func (r Reads) RiskRules(ctx context.Context) ([]pb.RiskRule, error) {
	out, err := collect(ctx, r.DB, []pb.RiskRule{}, func(row Scanner) (*pb.RiskRule, error) {
		var rule pb.RiskRule
		var action string
		var created int64
		if err := row.Scan(&rule.Name, &rule.Expression, &action, &rule.Priority, &created); err != nil {
			return nil, err
		}
		rule.Action, rule.CreatedAt = pb.RiskDecision(action), unix(created)
		return &rule, nil
	}, `SELECT name, expression, action, priority, created_at FROM risk_rules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the risk rules: %w", err)
	}
	return out, nil
}

func (r Reads) PutRiskRule(ctx context.Context, rule pb.RiskRule) error {
	_, err := r.DB.Exec(ctx, `INSERT INTO risk_rules (name, expression, action, priority, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET expression = excluded.expression, action = excluded.action,
		priority = excluded.priority, created_at = excluded.created_at`,
		rule.Name, rule.Expression, string(rule.Action), int64(rule.Priority), rule.CreatedAt.Unix())
	if err != nil {
		return fmt.Errorf("couldn't store risk rule %s: %w", rule.Name, err)
	}
	return nil
}

func (r Reads) DeleteRiskRule(ctx context.Context, name string) error {
	n, err := r.DB.Exec(ctx, `DELETE FROM risk_rules WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("couldn't delete risk rule %s: %w", name, err)
	}
	if n == 0 {
		return notFound("risk rule", name)
	}
	return nil
}

func (r Reads) AllMerchantFlags(ctx context.Context) ([]pb.MerchantFlags, error) {
	out, err := collect(ctx, r.DB, []pb.MerchantFlags{}, func(row Scanner) (*pb.MerchantFlags, error) {
		var f pb.MerchantFlags
		var flags string
		var updated int64
		if err := row.Scan(&f.MerchantID, &flags, &updated); err != nil {
			return nil, err
		}
		var err error
		if f.Flags, err = pb.DecodeFlagsColumn(flags); err != nil {
			return nil, fmt.Errorf("merchant %s has unreadable flags: %w", f.MerchantID, err)
		}
		f.UpdatedAt = unix(updated)
		return &f, nil
	}, `SELECT merchant_id, flags, updated_at FROM merchant_flags ORDER BY merchant_id`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the merchant flags: %w", err)
	}
	return out, nil
}

func (r Reads) SetMerchantFlags(ctx context.Context, f pb.MerchantFlags) error {
	var err error
	if len(f.Flags) == 0 {
		_, err = r.DB.Exec(ctx, `DELETE FROM merchant_flags WHERE merchant_id = $1`, f.MerchantID)
	} else {
		_, err = r.DB.Exec(ctx, `INSERT INTO merchant_flags (merchant_id, flags, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (merchant_id) DO UPDATE SET flags = excluded.flags, updated_at = excluded.updated_at`,
			f.MerchantID, f.FlagsColumn(), f.UpdatedAt.Unix())
	}
	if err != nil {
		return fmt.Errorf("couldn't store the flags of merchant %s: %w", f.MerchantID, err)
	}
	return nil
}
