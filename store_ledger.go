package paybound

import "context"

// LedgerStore is the ledger's storage (internal/ledger): accounts and
// transfers, which only Commit writes.
type LedgerStore interface {
	// NextIDs returns the next free account and transfer IDs.
	NextIDs(ctx context.Context) (account, transfer int64, err error)

	Account(ctx context.Context, owner, currency string) (*Account, error)
	AccountByID(ctx context.Context, id int64) (*Account, error)
	AccountsByOwner(ctx context.Context, owner string) ([]Account, error)
	// PendingTransfer returns the pending transfer id and whether a post or
	// void has already resolved it.
	PendingTransfer(ctx context.Context, id int64) (_ *Transfer, resolved bool, _ error)
	// ScanLedger calls accounts for every account and then transfers for
	// every transfer in ID order, all from one consistent snapshot; a
	// callback's error stops the scan and is returned.
	ScanLedger(ctx context.Context, accounts func(*Account) error, transfers func(*Transfer) error) error
}
