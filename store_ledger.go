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

// LedgerPart is the ledger's share of a Batch (internal/ledger): the
// accounts a batch creates or changes, its new transfers, and the balances
// a shared store hands back. A store writes Accounts and Transfers; Fresh
// it only fills.
type LedgerPart struct {
	Accounts []Account // created or changed, with final balances
	// AccountChanges[i] is what the batch changed in Accounts[i]: the sum of
	// the changes its operations applied, never a difference of snapshots,
	// so that a cache the writer rebased on fresh state cannot enter it. A
	// store that several processes share applies these sums, so that
	// concurrent batches add up, and lets its constraints refuse an
	// overdraft; a store with one writer may simply write Accounts.
	AccountChanges []AccountChange
	Transfers      []Transfer // inserted, never changed
	// Fresh is set by a SharedStore's Commit: the stored balances of the
	// batch's existing accounts right after it, including what other
	// processes had changed, so that the writer's cache catches up.
	Fresh []Account
}

// Empty reports whether p writes nothing (AccountChanges parallels
// Accounts, and Fresh is the store's answer).
func (p *LedgerPart) Empty() bool { return len(p.Accounts)+len(p.Transfers) == 0 }
