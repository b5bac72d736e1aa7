package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	pb "github.com/paybound/paybound"
)

// PayLinks is the payment links table: the columns lists filter on, the
// version a shared store checks, and the whole link as JSON. A row written
// again replaces the stored one (the SQLite store, whose one writer has
// read it); the PostgreSQL store writes changes with PayLinkUpdate instead.
var PayLinks = NewTable("pay_links", "id, merchant_id, version, data, created_at",
	` ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data`)

// PayLinkUpdate changes a link from the version the writer read ($3 - 1):
// it divides by zero, failing the batch, when another process changed the
// link meanwhile. $1 id, $2 data, $3 the new version.
const PayLinkUpdate = `WITH u AS (UPDATE pay_links SET data = $2, version = $3 WHERE id = $1 AND version = $3 - 1 RETURNING 1)
	SELECT 1 / (SELECT COUNT(*) FROM u)`

// LinkPayments records each payment made through a link.
var LinkPayments = NewTable("pay_link_payments", "link_id, payment_id, created_at", "")

// PayLinkRow encodes a link as PayLinks' columns; the URL is not stored
// (the server's public address may change).
func PayLinkRow(d []any, x *pb.PayLink) ([]any, error) {
	l := *x
	l.URL = ""
	data, err := json.Marshal(&l)
	if err != nil {
		return d, fmt.Errorf("couldn't encode payment link %s: %w", x.ID, err)
	}
	return append(d, x.ID, x.MerchantID, x.Version, string(data), x.CreatedAt.Unix()), nil
}

// LinkPaymentRow encodes a link's payment as LinkPayments' columns.
func LinkPaymentRow(d []any, x *pb.PayLinkPayment) ([]any, error) {
	return append(d, x.LinkID, x.PaymentID, x.CreatedAt.Unix()), nil
}

func scanPayLink(r Scanner) (*pb.PayLink, error) {
	var data string
	var version int64
	if err := r.Scan(&data, &version); err != nil {
		return nil, err
	}
	var l pb.PayLink
	if err := json.Unmarshal([]byte(data), &l); err != nil {
		return nil, fmt.Errorf("a payment link is unreadable: %w", err)
	}
	l.Version = version
	return &l, nil
}

func (r Reads) PayLink(ctx context.Context, id string) (*pb.PayLink, error) {
	l, err := scanPayLink(r.DB.QueryRow(ctx, `SELECT data, version FROM pay_links WHERE id = $1`, id))
	return l, found(err, "payment link", id)
}

func (r Reads) ListPayLinks(ctx context.Context, f pb.PayLinkFilter) ([]pb.PayLink, bool, error) {
	var w where
	w.add("merchant_id = ?", f.MerchantID)
	if f.StartingAfter != "" {
		w.add("id < ?", f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	out, err := collect(ctx, r.DB, []pb.PayLink{}, scanPayLink, `SELECT data, version FROM pay_links`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read payment links: %w", err)
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (r Reads) PayLinkPayments(ctx context.Context, f pb.PayLinkFilter) ([]string, bool, error) {
	var w where
	w.add("link_id = ?", f.LinkID)
	if f.StartingAfter != "" {
		w.add("payment_id < ?", f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	out := []string{}
	err := r.DB.Query(ctx, func(s Scanner) error {
		var p string
		err := s.Scan(&p)
		out = append(out, p)
		return err
	}, `SELECT payment_id FROM pay_link_payments`+strings.Replace(w.page(limit), "ORDER BY id", "ORDER BY payment_id", 1), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read a payment link's payments: %w", err)
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (r Reads) PayLinkOfPayment(ctx context.Context, paymentID string) (string, error) {
	var id string
	err := r.DB.QueryRow(ctx, `SELECT link_id FROM pay_link_payments WHERE payment_id = $1`, paymentID).Scan(&id)
	return id, found(err, "payment link of payment", paymentID)
}
