package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	pb "github.com/paybound/paybound"
)

var tDisputes = table{"disputes", "id, payment_id, payer_id, merchant_id, status, data, created_at", 7,
	` ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data`}

func disputeArgs(d []any, x *pb.Dispute) []any {
	data, _ := json.Marshal(x) // plain fields always encode
	return append(d, x.ID, x.PaymentID, x.PayerID, x.MerchantID, x.Status, string(data), x.CreatedAt.Unix())
}

func (s *Store) Dispute(ctx context.Context, id string) (*pb.Dispute, error) {
	var data string
	err := s.row(ctx, `SELECT data FROM disputes WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("dispute", id)
	}
	if err != nil {
		return nil, err
	}
	var d pb.Dispute
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return nil, fmt.Errorf("dispute %s is unreadable: %w", id, err)
	}
	return &d, nil
}

func (s *Store) PaymentDisputes(ctx context.Context, paymentID string) ([]pb.Dispute, error) {
	return s.disputes(ctx, `SELECT data FROM disputes WHERE payment_id = ? ORDER BY id LIMIT ?`, paymentID, pb.MaxListLimit+1)
}

func (s *Store) ListDisputes(ctx context.Context, f pb.DisputeFilter) ([]pb.Dispute, bool, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"payer_id", f.PayerID}, {"merchant_id", f.MerchantID}, {"status", f.Status}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if f.StartingAfter != "" {
		where = append(where, "id < ?")
		args = append(args, f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	q := `SELECT data FROM disputes`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	out, err := s.disputes(ctx, q+" ORDER BY id DESC LIMIT "+strconv.Itoa(limit+1), args...)
	if err != nil {
		return nil, false, err
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (s *Store) disputes(ctx context.Context, q string, args ...any) ([]pb.Dispute, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read disputes: %w", err)
	}
	defer rows.Close()
	out := []pb.Dispute{}
	for rows.Next() {
		var data string
		var d pb.Dispute
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return nil, fmt.Errorf("a dispute is unreadable: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
