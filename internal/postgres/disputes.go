package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	pb "github.com/paybound/paybound"
)

func queueDisputes(q *pgx.Batch, b *pb.Batch) error {
	for i := range b.Disputes {
		d := &b.Disputes[i]
		data, err := json.Marshal(d)
		if err != nil {
			return err
		}
		q.Queue(`INSERT INTO disputes (id, payment_id, payer_id, merchant_id, status, data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data`,
			d.ID, d.PaymentID, d.PayerID, d.MerchantID, d.Status, string(data), d.CreatedAt.Unix())
	}
	return nil
}

func (s *Store) Dispute(ctx context.Context, id string) (*pb.Dispute, error) {
	var data string
	err := s.pool.QueryRow(ctx, `SELECT data FROM disputes WHERE id = $1`, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
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
	return s.disputes(ctx, `SELECT data FROM disputes WHERE payment_id = $1 ORDER BY id LIMIT $2`, paymentID, pb.MaxListLimit+1)
}

func (s *Store) ListDisputes(ctx context.Context, f pb.DisputeFilter) ([]pb.Dispute, bool, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"payer_id", f.PayerID}, {"merchant_id", f.MerchantID}, {"status", f.Status}} {
		if c.v != "" {
			args = append(args, c.v)
			where = append(where, c.col+" = $"+strconv.Itoa(len(args)))
		}
	}
	if f.StartingAfter != "" {
		args = append(args, f.StartingAfter)
		where = append(where, "id < $"+strconv.Itoa(len(args)))
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
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read disputes: %w", err)
	}
	out := []pb.Dispute{}
	var data string
	if _, err := pgx.ForEachRow(rows, []any{&data}, func() error {
		var d pb.Dispute
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return fmt.Errorf("a dispute is unreadable: %w", err)
		}
		out = append(out, d)
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}
