package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	pb "github.com/paybound/paybound"
)

// Disputes is the disputes table: the columns lists filter on, and the
// whole dispute as JSON, replaced whole when written again.
var Disputes = NewTable("disputes", "id, payment_id, payer_id, merchant_id, status, data, created_at",
	` ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data`)

func DisputeRow(d []any, x *pb.Dispute) ([]any, error) {
	data, err := json.Marshal(x)
	if err != nil {
		return d, fmt.Errorf("couldn't encode dispute %s: %w", x.ID, err)
	}
	return append(d, x.ID, x.PaymentID, x.PayerID, x.MerchantID, x.Status, string(data), x.CreatedAt.Unix()), nil
}

// scanDispute decodes a row of data.
func scanDispute(r Scanner) (*pb.Dispute, error) {
	var data string
	if err := r.Scan(&data); err != nil {
		return nil, err
	}
	var d pb.Dispute
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return nil, fmt.Errorf("a dispute is unreadable: %w", err)
	}
	return &d, nil
}

func (r Reads) Dispute(ctx context.Context, id string) (*pb.Dispute, error) {
	d, err := scanDispute(r.DB.QueryRow(ctx, `SELECT data FROM disputes WHERE id = $1`, id))
	return d, found(err, "dispute", id)
}

func (r Reads) PaymentDisputes(ctx context.Context, paymentID string) ([]pb.Dispute, error) {
	return r.disputes(ctx, `SELECT data FROM disputes WHERE payment_id = $1 ORDER BY id LIMIT $2`, paymentID, pb.MaxListLimit+1)
}

func (r Reads) ListDisputes(ctx context.Context, f pb.DisputeFilter) ([]pb.Dispute, bool, error) {
	var w where
	for _, c := range []struct{ col, v string }{{"payer_id", f.PayerID}, {"merchant_id", f.MerchantID}, {"status", f.Status}} {
		if c.v != "" {
			w.add(c.col+" = ?", c.v)
		}
	}
	if f.StartingAfter != "" {
		w.add("id < ?", f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	out, err := r.disputes(ctx, `SELECT data FROM disputes`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, err
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (r Reads) disputes(ctx context.Context, q string, args ...any) ([]pb.Dispute, error) {
	out, err := collect(ctx, r.DB, []pb.Dispute{}, scanDispute, q, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read disputes: %w", err)
	}
	return out, nil
}
