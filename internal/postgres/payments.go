package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// queuePayments queues what b writes of the payments core but for its
// idempotency records (queueIdempotency): payments, refunds, top-ups and
// identities. A payment's entries in the batch are listed on its row
// (onRow: see paymentLogRanges).
func queuePayments(q *pgx.Batch, b *pb.Batch, onRow map[string]logRange) error {
	return errors.Join(queuePaymentRows(q, b, onRow),
		queueRows(q, sqlstore.Refunds, b.Refunds, sqlstore.RefundRow),
		queueRows(q, sqlstore.Topups, b.Topups, sqlstore.TopupRow),
		queueRows(q, sqlstore.Users, b.Users, sqlstore.UserRow),
		queueRows(q, sqlstore.Merchants, b.Merchants, sqlstore.MerchantRow),
		queueRows(q, sqlstore.Agents, b.Agents, sqlstore.AgentRow),
		queueRows(q, sqlstore.APIKeys, b.APIKeys, sqlstore.APIKeyRow))
}

// queuePaymentRows inserts the batch's new payments and updates the others
// only where the stored version is the one the writer read; a statement
// that updates fewer rows than asked divides by zero, which aborts the
// whole batch. A payment's risk is written by the insert only: its
// assessment never changes after its creation.
func queuePaymentRows(q *pgx.Batch, b *pb.Batch, onRow map[string]logRange) error {
	var ins, upd []*pb.Payment
	var prev []int64
	for i := range b.Payments {
		if i < len(b.PaymentVersions) && b.PaymentVersions[i] > 0 {
			upd, prev = append(upd, &b.Payments[i]), append(prev, b.PaymentVersions[i])
		} else {
			ins = append(ins, &b.Payments[i])
		}
	}
	if err := queuePaymentInserts(q, ins, onRow); err != nil {
		return err
	}
	queuePaymentUpdates(q, upd, prev, onRow)
	return nil
}

// queuePaymentInserts inserts new payments, all in one statement.
func queuePaymentInserts(q *pgx.Batch, ins []*pb.Payment, onRow map[string]logRange) error {
	n := len(ins)
	if n == 0 {
		return nil
	}
	id, status, cur, merchant, payer, agent, mandate, desc, capture, md, decline := make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	amount, captured, refunded, fee, feeRef, hold, created, version := make([]int64, n), make([]int64, n), make([]int64, n),
		make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	exp, cexp := make([]*int64, n), make([]*int64, n)
	cid, assurance := make([]string, n), make([]string, n)
	risk, input := make([]string, n), make([]string, n)
	head, logLo, logHi := make([][]byte, n), make([]*int64, n), make([]*int64, n)
	for i, p := range ins {
		head[i] = logHead(p.LogHead)
		logLo[i], logHi[i] = logRefs(onRow, p)
		risk[i], input[i] = p.Risk.Columns()
		cid[i], cexp[i] = p.ConfirmationColumns()
		assurance[i] = string(p.Assurance)
		m, err := sqlstore.PaymentMetadata(p)
		if err != nil {
			return err
		}
		id[i], status[i], cur[i], merchant[i], payer[i] = p.ID, string(p.Status), p.Currency, p.MerchantID, p.PayerID
		agent[i], mandate[i], desc[i], capture[i], md[i] = string(p.AgentID), string(p.MandateID), p.Description, string(p.CaptureMethod), m
		decline[i], exp[i] = string(p.DeclineCode), expiry(p)
		amount[i], captured[i], refunded[i], fee[i], feeRef[i] = p.Amount, p.AmountCaptured, p.AmountRefunded, p.FeeAmount, p.FeeRefunded
		hold[i], created[i], version[i] = p.HoldID, p.CreatedAt.Unix(), p.Version
	}
	q.Queue(`INSERT INTO payments (id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded, currency,
		merchant_id, payer_id, agent_id, mandate_id, description, capture_method, authorization_expires_at, metadata,
		decline_code, hold_id, created_at, version, confirmation_id, confirmation_expires_at, assurance, log_head,
		risk, risk_input, log_refs)
		-- c1 to c26 are the columns above, in order.
		SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24,
			c25, c26, `+logRefsSQL+`
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::text[],
			$17::text[], $18::bigint[], $19::bigint[], $20::bigint[], $21::text[], $22::bigint[], $23::text[], $24::bytea[],
			$25::text[], $26::text[], $27::bigint[], $28::bigint[])
		AS x(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24,
			c25, c26, log_lo, log_hi)`,
		id, status, amount, captured, refunded, fee, feeRef, cur, merchant, payer, agent, mandate, desc, capture, exp, md,
		decline, hold, created, version, cid, cexp, assurance, head, risk, input, logLo, logHi)
	return nil
}

// queuePaymentUpdates updates payments where the stored version is prev's,
// all in one statement.
func queuePaymentUpdates(q *pgx.Batch, upd []*pb.Payment, prev []int64, onRow map[string]logRange) {
	n := len(upd)
	if n == 0 {
		return
	}
	id, status, decline := make([]string, n), make([]string, n), make([]string, n)
	captured, refunded, fee, feeRef, hold, version := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n),
		make([]int64, n), make([]int64, n)
	exp, cexp := make([]*int64, n), make([]*int64, n)
	cid := make([]string, n)
	head, logLo, logHi := make([][]byte, n), make([]*int64, n), make([]*int64, n)
	for i, p := range upd {
		head[i] = logHead(p.LogHead)
		logLo[i], logHi[i] = logRefs(onRow, p)
		id[i], status[i], decline[i], exp[i] = p.ID, string(p.Status), string(p.DeclineCode), expiry(p)
		cid[i], cexp[i] = p.ConfirmationColumns()
		captured[i], refunded[i], fee[i], feeRef[i], hold[i], version[i] = p.AmountCaptured, p.AmountRefunded, p.FeeAmount, p.FeeRefunded, p.HoldID, p.Version
	}
	// Dividing by zero when fewer rows matched their version aborts the
	// whole batch: another process changed one of these payments.
	q.Queue(`WITH u AS (
			UPDATE payments p SET status = d.status, amount_captured = d.captured, amount_refunded = d.refunded,
				fee_amount = d.fee, fee_refunded = d.fee_refunded, authorization_expires_at = d.exp,
				decline_code = d.decline, hold_id = d.hold, version = d.version,
				confirmation_id = d.cid, confirmation_expires_at = d.cexp, log_head = d.head,
				log_refs = p.log_refs || `+logRefsSQL+`
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
				$8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $13::text[], $14::bigint[], $15::bytea[],
				$16::bigint[], $17::bigint[])
				AS d(id, status, captured, refunded, fee, fee_refunded, exp, decline, hold, version, prev, cid, cexp, head,
					log_lo, log_hi)
			WHERE p.id = d.id AND p.version = d.prev RETURNING 1)
		SELECT 1 / (CASE WHEN (SELECT COUNT(*) FROM u) = $12 THEN 1 ELSE 0 END)`,
		id, status, captured, refunded, fee, feeRef, exp, decline, hold, version, prev, n, cid, cexp, head, logLo, logHi)
}

func expiry(p *pb.Payment) *int64 {
	if p.AuthorizationExpiresAt == nil {
		return nil
	}
	v := p.AuthorizationExpiresAt.Unix()
	return &v
}

// logHead stores a payment's log head, NULL before its first entry.
func logHead(h [32]byte) []byte {
	if h == ([32]byte{}) {
		return nil
	}
	return h[:]
}

// queueIdempotency inserts b's idempotency records in one statement: a
// key another process stored since the writer looked it up refuses the
// batch.
func queueIdempotency(q *pgx.Batch, b *pb.Batch) {
	n := len(b.Idempotency)
	if n == 0 {
		return
	}
	caller, key := make([]string, n), make([]string, n)
	hash, body := make([][]byte, n), make([][]byte, n)
	status, created := make([]int32, n), make([]int64, n)
	for i := range b.Idempotency {
		r := &b.Idempotency[i]
		caller[i], key[i], hash[i], status[i], created[i] = r.Caller, r.Key, r.RequestHash[:], int32(r.Status), r.CreatedAt.UnixMilli()
		body[i] = sqlstore.IdempotencyBody(r)
	}
	q.Queue(`INSERT INTO idempotency (`+sqlstore.IdempotencyCols+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::bytea[], $6::bigint[])`,
		caller, key, hash, status, body, created)
}

func (s *Store) LookupIdempotency(ctx context.Context, keys []pb.IdempotencyKey) ([]pb.IdempotencyRecord, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	caller, key := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		caller[i], key[i] = k.Caller, k.Key
	}
	rows, err := s.pool.Query(ctx, `SELECT i.caller, i.key, i.request_hash, i.status, i.body, i.created_ms
		FROM idempotency i JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS k(caller, key)
		ON i.caller = k.caller AND i.key = k.key`, caller, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pb.IdempotencyRecord
	for rows.Next() {
		r, err := sqlstore.ScanIdempotency(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

func (s *Store) DeleteIdempotency(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency WHERE (caller, key) IN
		(SELECT caller, key FROM idempotency WHERE created_ms < $1 LIMIT $2)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
