package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	pb "github.com/paybound/paybound"
)

// Mandates is the mandates table, without an ON CONFLICT clause: each
// store adds its own, which updates the revocation.
var Mandates = NewTable("mandates", "id, user_id, agent_id, data, revoked_at, created_at", "")

// MandateRow encodes a mandate: its definition as JSON, and its
// revocation in a column of its own, which alone may change.
func MandateRow(d []any, m *pb.Mandate) ([]any, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return d, fmt.Errorf("couldn't encode mandate %s: %w", m.ID, err)
	}
	return append(d, m.ID, m.UserID, m.AgentID, string(data), unixOrNil(m.RevokedAt), m.CreatedAt.Unix()), nil
}

// scanMandate decodes a row of data, revoked_at: the revocation column,
// not the JSON, says whether the mandate is revoked.
func scanMandate(r Scanner) (*pb.Mandate, error) {
	var data string
	var revoked *int64
	if err := r.Scan(&data, &revoked); err != nil {
		return nil, err
	}
	var m pb.Mandate
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return nil, fmt.Errorf("unreadable mandate: %w", err)
	}
	m.RevokedAt = unixPtr(revoked)
	return &m, nil
}

func (r Reads) Mandate(ctx context.Context, id string) (*pb.Mandate, error) {
	m, err := scanMandate(r.DB.QueryRow(ctx, `SELECT data, revoked_at FROM mandates WHERE id = $1`, id))
	return m, found(err, "mandate", id)
}

func (r Reads) ListMandates(ctx context.Context, f pb.MandateFilter) ([]pb.Mandate, bool, error) {
	var w where
	w.add("user_id = ?", f.UserID)
	if f.AgentID != "" {
		w.add("agent_id = ?", f.AgentID)
	}
	if f.StartingAfter != "" {
		w.add("id < ?", f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	out, err := collect(ctx, r.DB, []pb.Mandate{}, scanMandate, `SELECT data, revoked_at FROM mandates`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, err
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (r Reads) MandateUsage(ctx context.Context, mandateID, periodKey string) (*pb.MandateUsageRow, error) {
	u := pb.MandateUsageRow{MandateID: mandateID, PeriodKey: periodKey}
	err := r.DB.QueryRow(ctx, `SELECT spent, payments, cap_amount, cap_payments FROM mandate_usage WHERE mandate_id = $1 AND period_key = $2`,
		mandateID, periodKey).Scan(&u.Spent, &u.Payments, &u.CapAmount, &u.CapPayments)
	if err != nil {
		return nil, found(err, "mandate usage", mandateID+"/"+periodKey)
	}
	return &u, nil
}
