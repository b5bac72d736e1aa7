package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

var (
	// A payment's risk columns are written by the insert only: its
	// assessment never changes after its creation. log_idx lists the
	// indexes of its entries in the log (see paymentEntries).
	tPayments = sqlstore.NewTable("payments", `id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded,
		currency, merchant_id, payer_id, agent_id, mandate_id, description, capture_method, authorization_expires_at,
		metadata, decline_code, hold_id, created_at, version, confirmation_id, confirmation_expires_at, assurance, log_head,
		risk, risk_input, log_idx`,
		` ON CONFLICT (id) DO UPDATE SET status = excluded.status, amount_captured = excluded.amount_captured,
		amount_refunded = excluded.amount_refunded, fee_amount = excluded.fee_amount, fee_refunded = excluded.fee_refunded,
		authorization_expires_at = excluded.authorization_expires_at, decline_code = excluded.decline_code, hold_id = excluded.hold_id,
		version = excluded.version, confirmation_id = excluded.confirmation_id,
		confirmation_expires_at = excluded.confirmation_expires_at, log_head = excluded.log_head,
		log_idx = CAST(COALESCE(payments.log_idx, x'') || COALESCE(excluded.log_idx, x'') AS BLOB)`)
	tIdempotency = sqlstore.NewTable("idempotency", sqlstore.IdempotencyCols, "")
)

// paymentParts is what b writes of the payments core: payments (row i
// listing its log entries logIdx[i], a new one with its risk columns from
// risks), refunds, top-ups, identities and idempotency records (record i
// with the stored body bodies()[i]).
func paymentParts(b *pb.Batch, logIdx [][]byte, bodies, risks func() [][]byte) []part {
	return []part{
		{tPayments, len(b.Payments), func(d []any, i int) ([]any, error) {
			p := &b.Payments[i]
			md, err := sqlstore.PaymentMetadata(p)
			if err != nil {
				return nil, err
			}
			var exp, cexp any
			if p.AuthorizationExpiresAt != nil {
				exp = p.AuthorizationExpiresAt.Unix()
			}
			cid, ce := p.ConfirmationColumns()
			if ce != nil {
				cexp = *ce
			}
			// An update leaves them as they are: only a new payment has them.
			risk, input := []byte{}, []byte{}
			if b.PaymentVersions[i] == 0 {
				risk, input = risks()[2*i], risks()[2*i+1]
			}
			return append(d, p.ID, string(p.Status), p.Amount, p.AmountCaptured, p.AmountRefunded, p.FeeAmount, p.FeeRefunded,
				p.Currency, p.MerchantID, p.PayerID, string(p.AgentID), string(p.MandateID), p.Description,
				string(p.CaptureMethod), exp, md, string(p.DeclineCode), p.HoldID, p.CreatedAt.Unix(), p.Version, cid, cexp,
				string(p.Assurance), logHead(p.LogHead), risk, input, logIdx[i]), nil
		}},
		partOf(sqlstore.Refunds, b.Refunds, sqlstore.RefundRow),
		partOf(sqlstore.Topups, b.Topups, sqlstore.TopupRow),
		partOf(sqlstore.Users, b.Users, sqlstore.UserRow),
		partOf(sqlstore.Merchants, b.Merchants, sqlstore.MerchantRow),
		partOf(sqlstore.Agents, b.Agents, sqlstore.AgentRow),
		partOf(sqlstore.APIKeys, b.APIKeys, sqlstore.APIKeyRow),
		{tIdempotency, len(b.Idempotency), func(d []any, i int) ([]any, error) {
			r := &b.Idempotency[i]
			return append(d, r.Caller, r.Key, r.RequestHash[:], r.Status, bodies()[i], r.CreatedAt.UnixMilli()), nil
		}},
	}
}

// mergeEvery is how many new payments the writer lets build up before it
// adds their entries to payment_parties (migration 0024). The more, the
// fewer pages a merge writes a payment (a payer's entries among them share
// a page), and the more payments a list of one payer's reads beside the
// index (2,048 rows of about 250 bytes, read by rowid). Measured with
// bench payments (128 payers, WAL frames attributed with dbstat): the
// payer's index wrote 4.5 KB of WAL a payment on payments, payment_parties
// 0.23 KB; signed, payer and agent together 7.4 KB before, 0.3 KB after.
const mergeEvery = 2048

// newPayments counts the payments b creates.
func newPayments(b *pb.Batch) int {
	n := 0
	for _, v := range b.PaymentVersions {
		if v == 0 {
			n++
		}
	}
	return n
}

// mergeParties adds to payment_parties the entries (payer, agent,
// merchant) of the payments after payment_parties_upto, in key order, and
// moves the mark past them, in the writer's transaction: whoever reads the
// two in one statement sees each payment once. An entry already there is
// the same payment's (its party and its ID name it), so it is left.
func (s *Store) mergeParties(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO payment_parties (party, pid, rid)
		SELECT payer_id, id, rowid FROM payments WHERE rowid > (SELECT upto FROM payment_parties_upto)
		UNION ALL SELECT agent_id, id, rowid FROM payments WHERE rowid > (SELECT upto FROM payment_parties_upto) AND agent_id <> ''
		UNION ALL SELECT merchant_id, id, rowid FROM payments WHERE rowid > (SELECT upto FROM payment_parties_upto)
		ORDER BY 1, 2`); err != nil {
		return fmt.Errorf("couldn't add payments to payment_parties: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE payment_parties_upto SET upto = (SELECT COALESCE(MAX(rowid), 0) FROM payments)`); err != nil {
		return fmt.Errorf("couldn't add payments to payment_parties: %w", err)
	}
	return nil
}

// logHead stores a payment's log head, NULL before its first entry.
func logHead(h [32]byte) any {
	if h == ([32]byte{}) {
		return nil
	}
	return h[:]
}

// LookupIdempotency asks in chunks of a few fixed sizes, so that the
// statements are prepared once instead of parsed per batch.
func (s *Store) LookupIdempotency(ctx context.Context, keys []pb.IdempotencyKey) ([]pb.IdempotencyRecord, error) {
	var out []pb.IdempotencyRecord
	args := make([]any, 0, 2*chunks[0])
	for len(keys) > 0 {
		n := 1
		for _, c := range chunks {
			if len(keys) >= c {
				n = c
				break
			}
		}
		args = args[:0]
		for _, k := range keys[:n] {
			args = append(args, k.Caller, k.Key)
		}
		keys = keys[n:]
		st, err := s.prepared(ctx, `SELECT `+sqlstore.IdempotencyCols+` FROM idempotency WHERE (caller, key) IN (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?,?),", n), ",")+`)`)
		if err != nil {
			return nil, err
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r, err := sqlstore.ScanIdempotency(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, *r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteIdempotency deletes the oldest records, in the order they were
// written (rowid), without an index on their age (migration 0020: the
// index cost a page write in every commit for what a sweep reads now and
// then). When the oldest record is not past the cutoff there is nothing
// to do, which one row's read tells; otherwise it looks at the oldest
// 4×limit rows only, never the whole table. Records are written in time
// order, so those are the ones past the cutoff, but for a few whose clock
// ran backwards, which later sweeps take (and a clock that ran ahead holds
// the sweep back until it is caught up with).
func (s *Store) DeleteIdempotency(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	var oldest int64
	err := s.row(ctx, `SELECT created_ms FROM idempotency ORDER BY rowid LIMIT 1`).Scan(&oldest)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && oldest >= cutoff.UnixMilli()) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency WHERE rowid IN (
		SELECT rowid FROM (SELECT rowid, created_ms FROM idempotency ORDER BY rowid LIMIT ?) WHERE created_ms < ? LIMIT ?)`, 4*limit, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
