package sqlstore

import (
	"context"
	"time"

	pb "github.com/paybound/paybound"
)

// AccountCols are the columns ScanAccount reads.
const AccountCols = `id, owner, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted`

// ScanAccount decodes a row of AccountCols.
func ScanAccount(r Scanner) (*pb.Account, error) {
	var a pb.Account
	var flags int64
	if err := r.Scan(&a.ID, &a.Owner, &a.Currency, &flags, &a.DebitsPending, &a.DebitsPosted, &a.CreditsPending, &a.CreditsPosted); err != nil {
		return nil, err
	}
	a.Flags = pb.AccountFlags(flags)
	return &a, nil
}

// transferSelect selects the transfers' columns that scanTransfer reads.
const transferSelect = `SELECT id, kind, debit_account_id, credit_account_id, amount, currency, COALESCE(pending_id, 0), COALESCE(timeout_ms, 0), ref, created_ms FROM transfers`

// scanTransfer decodes a row of transferSelect.
func scanTransfer(r Scanner) (*pb.Transfer, error) {
	var t pb.Transfer
	var kind int
	var timeout, created int64
	if err := r.Scan(&t.ID, &kind, &t.DebitAccountID, &t.CreditAccountID, &t.Amount, &t.Currency, &t.PendingID, &timeout, &t.Ref, &created); err != nil {
		return nil, err
	}
	t.Kind = pb.TransferKind(kind)
	if timeout != 0 {
		t.Timeout = time.UnixMilli(timeout).UTC()
	}
	t.CreatedAt = time.UnixMilli(created).UTC()
	return &t, nil
}

// NextIDs returns one past the largest account and transfer IDs.
func (r Reads) NextIDs(ctx context.Context) (account, transfer int64, err error) {
	err = r.DB.QueryRow(ctx, `SELECT COALESCE((SELECT MAX(id) FROM accounts), 0) + 1, COALESCE((SELECT MAX(id) FROM transfers), 0) + 1`).Scan(&account, &transfer)
	return account, transfer, err
}

func (r Reads) Account(ctx context.Context, owner, currency string) (*pb.Account, error) {
	a, err := ScanAccount(r.DB.QueryRow(ctx, `SELECT `+AccountCols+` FROM accounts WHERE owner = $1 AND currency = $2`, owner, currency))
	return a, found(err, "account", owner+"/"+currency)
}

func (r Reads) AccountByID(ctx context.Context, id int64) (*pb.Account, error) {
	a, err := ScanAccount(r.DB.QueryRow(ctx, `SELECT `+AccountCols+` FROM accounts WHERE id = $1`, id))
	return a, found(err, "account", id)
}

func (r Reads) AccountsByOwner(ctx context.Context, owner string) ([]pb.Account, error) {
	return collect(ctx, r.DB, nil, ScanAccount, `SELECT `+AccountCols+` FROM accounts WHERE owner = $1 ORDER BY currency`, owner)
}

func (r Reads) PendingTransfer(ctx context.Context, id int64) (*pb.Transfer, bool, error) {
	t, err := scanTransfer(r.DB.QueryRow(ctx, transferSelect+` WHERE id = $1 AND kind = $2`, id, int(pb.TransferPending)))
	if err != nil {
		return nil, false, found(err, "pending transfer", id)
	}
	var resolved bool
	if err := r.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM transfers WHERE pending_id = $1)`, id).Scan(&resolved); err != nil {
		return nil, false, err
	}
	return t, resolved, nil
}

// ScanLedger is pb.Store's ScanLedger over db, a transaction whose
// snapshot the store chose.
func ScanLedger(ctx context.Context, db DB, accounts func(*pb.Account) error, transfers func(*pb.Transfer) error) error {
	err := db.Query(ctx, func(r Scanner) error {
		a, err := ScanAccount(r)
		if err != nil {
			return err
		}
		return accounts(a)
	}, `SELECT `+AccountCols+` FROM accounts ORDER BY id`)
	if err != nil {
		return err
	}
	return db.Query(ctx, func(r Scanner) error {
		t, err := scanTransfer(r)
		if err != nil {
			return err
		}
		return transfers(t)
	}, transferSelect+` ORDER BY id`)
}
