package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
)

// X402Tabs is the x402 tabs table: the columns the facilitator looks tabs
// up by, the version a shared store checks, and the whole tab as JSON. A
// row written again replaces the stored one (the SQLite store, whose one
// writer has read it); the PostgreSQL store writes changes with
// X402TabUpdate instead.
var X402Tabs = NewTable("x402_tabs", "id, merchant_id, payment_id, status, close_at, version, data, created_at",
	` ON CONFLICT (id) DO UPDATE SET status = excluded.status, close_at = excluded.close_at, version = excluded.version, data = excluded.data`)

// X402TabUpdate changes a tab from the version the writer read ($5 - 1):
// it divides by zero, failing the batch, when another process changed the
// tab meanwhile. $1 id, $2 status, $3 close_at, $4 data, $5 the new version.
const X402TabUpdate = `WITH u AS (UPDATE x402_tabs SET status = $2, close_at = $3, data = $4, version = $5 WHERE id = $1 AND version = $5 - 1 RETURNING 1)
	SELECT 1 / (SELECT COUNT(*) FROM u)`

// X402TabRow encodes a tab as X402Tabs' columns.
func X402TabRow(d []any, x *pb.Tab) ([]any, error) {
	data, err := json.Marshal(x)
	if err != nil {
		return d, fmt.Errorf("couldn't encode tab %s: %w", x.ID, err)
	}
	var closeAt any
	if x.CloseAt != nil {
		closeAt = x.CloseAt.Unix()
	}
	return append(d, x.ID, x.MerchantID, x.PaymentID, string(x.Status), closeAt, x.Version, string(data), x.CreatedAt.Unix()), nil
}

func scanTab(r Scanner) (*pb.Tab, error) {
	var data string
	var version int64
	if err := r.Scan(&data, &version); err != nil {
		return nil, err
	}
	var t pb.Tab
	if err := json.Unmarshal([]byte(data), &t); err != nil {
		return nil, fmt.Errorf("a tab is unreadable: %w", err)
	}
	t.Version = version
	return &t, nil
}

func (r Reads) Tab(ctx context.Context, id string) (*pb.Tab, error) {
	t, err := scanTab(r.DB.QueryRow(ctx, `SELECT data, version FROM x402_tabs WHERE id = $1`, id))
	return t, found(err, "tab", id)
}

func (r Reads) TabOfPayment(ctx context.Context, paymentID string) (*pb.Tab, error) {
	t, err := scanTab(r.DB.QueryRow(ctx, `SELECT data, version FROM x402_tabs WHERE payment_id = $1`, paymentID))
	return t, found(err, "tab of payment", paymentID)
}

func (r Reads) TabsClosingBefore(ctx context.Context, t time.Time, limit int) ([]pb.Tab, error) {
	out, err := collect(ctx, r.DB, []pb.Tab{}, scanTab,
		`SELECT data, version FROM x402_tabs WHERE status = $1 AND close_at < $2 ORDER BY close_at, id LIMIT $3`,
		string(pb.TabClosing), t.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read closing tabs: %w", err)
	}
	return out, nil
}
