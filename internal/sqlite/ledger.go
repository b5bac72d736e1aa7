package sqlite

import (
	"context"
	"database/sql"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// The ledger's tables. With one writer, an account's row is simply
// overwritten with its final balances.
var (
	tAccounts = sqlstore.NewTable("accounts", sqlstore.AccountCols,
		` ON CONFLICT (id) DO UPDATE SET debits_pending = excluded.debits_pending, debits_posted = excluded.debits_posted,
		credits_pending = excluded.credits_pending, credits_posted = excluded.credits_posted`)
	tTransfers = sqlstore.NewTable("transfers", "id, kind, debit_account_id, credit_account_id, amount, currency, pending_id, timeout_ms, ref, created_ms", "")
)

// ledgerParts is what b writes of the ledger: accounts and transfers.
func ledgerParts(b *pb.Batch) []part {
	return []part{
		partOf(tAccounts, b.Accounts, func(d []any, a *pb.Account) ([]any, error) {
			return append(d, a.ID, a.Owner, a.Currency, int64(a.Flags), a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted), nil
		}),
		partOf(tTransfers, b.Transfers, func(d []any, t *pb.Transfer) ([]any, error) {
			return append(d, t.ID, int(t.Kind), t.DebitAccountID, t.CreditAccountID, t.Amount, t.Currency,
				nullInt(t.PendingID), ms(t.Timeout), t.Ref, t.CreatedAt.UnixMilli()), nil
		}),
	}
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// ScanLedger reads accounts and transfers inside one read transaction, so
// that with WAL both come from the same committed state.
func (s *Store) ScanLedger(ctx context.Context, accounts func(*pb.Account) error, transfers func(*pb.Transfer) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return sqlstore.ScanLedger(ctx, conn{q: tx}, accounts, transfers)
}
