package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// queueLedger queues b's accounts and transfers.
func queueLedger(q *pgx.Batch, b *pb.Batch) {
	queueAccounts(q, b)
	n := len(b.Transfers)
	if n == 0 {
		return
	}
	var (
		id, debit, credit, amount, pending, timeout, created = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		kind                                                 = make([]int16, n)
		cur, ref                                             = make([]string, n), make([]string, n)
	)
	for i, t := range b.Transfers {
		id[i], kind[i], debit[i], credit[i], amount[i], cur[i] = t.ID, int16(t.Kind), t.DebitAccountID, t.CreditAccountID, t.Amount, t.Currency
		pending[i], ref[i], created[i] = t.PendingID, t.Ref, t.CreatedAt.UnixMilli()
		if !t.Timeout.IsZero() {
			timeout[i] = t.Timeout.UnixMilli()
		}
	}
	q.Queue(`INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, currency, pending_id, timeout_ms, ref, created_ms)
		SELECT id, kind, d, c, a, cur, NULLIF(p, 0), NULLIF(t, 0), ref, cr
		FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[])
		AS x(id, kind, d, c, a, cur, p, t, ref, cr)`, id, kind, debit, credit, amount, cur, pending, timeout, ref, created)
}

// queueAccounts inserts the batch's new accounts and changes the others by
// their differences. The existing rows are first locked in ID order, so
// that concurrent batches lock in the same order and cannot deadlock; the
// update returns the stored balances for the writer's cache.
func queueAccounts(q *pgx.Batch, b *pb.Batch) {
	var (
		newID, newFlags              []int64
		newOwner, newCur             []string
		newDP, newDPo, newCP, newCPo []int64
		id, dDP, dDPo, dCP, dCPo     []int64
	)
	for i, a := range b.Accounts {
		c := b.AccountChanges[i]
		if c.Created {
			newID, newOwner, newCur, newFlags = append(newID, a.ID), append(newOwner, a.Owner), append(newCur, a.Currency), append(newFlags, int64(a.Flags))
			newDP, newDPo, newCP, newCPo = append(newDP, c.DebitsPending), append(newDPo, c.DebitsPosted), append(newCP, c.CreditsPending), append(newCPo, c.CreditsPosted)
			continue
		}
		id = append(id, a.ID)
		dDP, dDPo = append(dDP, c.DebitsPending), append(dDPo, c.DebitsPosted)
		dCP, dCPo = append(dCP, c.CreditsPending), append(dCPo, c.CreditsPosted)
	}
	if len(newID) > 0 {
		q.Queue(`INSERT INTO accounts (id, owner, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])`,
			newID, newOwner, newCur, newFlags, newDP, newDPo, newCP, newCPo)
	}
	if len(id) == 0 {
		return
	}
	q.Queue(`SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE`, id)
	q.Queue(`UPDATE accounts a SET debits_pending = a.debits_pending + d.dp, debits_posted = a.debits_posted + d.dpo,
			credits_pending = a.credits_pending + d.cp, credits_posted = a.credits_posted + d.cpo
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS d(id, dp, dpo, cp, cpo)
		WHERE a.id = d.id
		RETURNING a.id, a.owner, a.currency, a.flags, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted`,
		id, dDP, dDPo, dCP, dCPo).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			fresh, err := sqlstore.ScanAccount(rows)
			if err != nil {
				return err
			}
			b.Fresh = append(b.Fresh, *fresh)
		}
		return rows.Err()
	})
}

// ScanLedger reads accounts and transfers in one REPEATABLE READ
// transaction: one snapshot for both.
func (s *Store) ScanLedger(ctx context.Context, accounts func(*pb.Account) error, transfers func(*pb.Transfer) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return sqlstore.ScanLedger(ctx, conn{tx}, accounts, transfers)
	})
}
