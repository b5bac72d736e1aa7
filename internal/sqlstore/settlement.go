package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
)

// merchantTransfers selects the posted transfers on a merchant's accounts
// ($1) created in [$2, $3) ms and after the cursor ($4 ms, $5 id), each
// side of a transfer through its own index (0010_settlement), with the
// refund and the payment its ref names, and the link the payment was made
// through. What left a merchant's accounts is always posted at once (kind
// 0: refunds, fees, payouts): a merchant's account is never a hold's debit
// side, so the debit index leaves out posted holds (migration 0023).
const merchantTransfers = `SELECT m.id, m.kind, m.amount, m.currency, m.ref, m.created_ms, o.owner,
		COALESCE(r.payment_id, p.id, ''), COALESCE(r.amount, 0), COALESCE(r.reason, ''),
		COALESCE(p.description, ''), COALESCE(p.metadata, ''), COALESCE(lp.link_id, '')
	FROM (
		SELECT t.id, t.kind, t.amount, t.currency, t.ref, t.created_ms, t.debit_account_id AS other
		FROM accounts a JOIN transfers t ON t.credit_account_id = a.id
		WHERE a.owner = $1 AND t.kind IN (0, 2) AND t.created_ms >= $2 AND t.created_ms < $3
			AND (t.created_ms > $4 OR (t.created_ms = $4 AND t.id > $5))
		UNION ALL
		SELECT t.id, t.kind, -t.amount, t.currency, t.ref, t.created_ms, t.credit_account_id AS other
		FROM accounts a JOIN transfers t ON t.debit_account_id = a.id
		WHERE a.owner = $1 AND t.kind = 0 AND t.created_ms >= $2 AND t.created_ms < $3
			AND (t.created_ms > $4 OR (t.created_ms = $4 AND t.id > $5))
	) m
	JOIN accounts o ON o.id = m.other
	LEFT JOIN refunds r ON r.id = m.ref
	LEFT JOIN payments p ON p.id = COALESCE(r.payment_id, m.ref)
	LEFT JOIN pay_link_payments lp ON lp.payment_id = p.id
	ORDER BY m.created_ms, m.id
	LIMIT $6`

// MaxMerchantTransfers bounds a page of MerchantTransfers.
const MaxMerchantTransfers = 1000

func (r Reads) MerchantTransfers(ctx context.Context, f pb.MerchantTransferFilter) ([]pb.MerchantTransfer, error) {
	limit := f.Limit
	if limit <= 0 || limit > MaxMerchantTransfers {
		limit = MaxMerchantTransfers
	}
	after := int64(-1 << 62)
	if !f.AfterTime.IsZero() {
		after = f.AfterTime.UnixMilli()
	}
	out := []pb.MerchantTransfer{}
	err := r.DB.Query(ctx, func(s Scanner) error {
		var t pb.MerchantTransfer
		var kind int
		var created int64
		var meta string
		if err := s.Scan(&t.ID, &kind, &t.Amount, &t.Currency, &t.Ref, &created, &t.Counterparty,
			&t.PaymentID, &t.RefundAmount, &t.RefundReason, &t.Description, &meta, &t.PayLinkID); err != nil {
			return err
		}
		t.Kind, t.CreatedAt = pb.TransferKind(kind), time.UnixMilli(created).UTC()
		if meta != "" {
			if err := json.Unmarshal([]byte(meta), &t.Metadata); err != nil {
				return fmt.Errorf("payment %s's metadata is unreadable: %w", t.PaymentID, err)
			}
		}
		out = append(out, t)
		return nil
	}, merchantTransfers, f.MerchantID, f.From.UnixMilli(), f.To.UnixMilli(), after, f.AfterID, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the merchant's transfers: %w", err)
	}
	return out, nil
}
