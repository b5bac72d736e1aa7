package paybound

import "time"

// Owners of the system's own accounts. Every other account is owned by a
// user (wallet) or a merchant.
const (
	// OwnerFunding is the sandbox funding rail: money enters wallets from it,
	// so its balance is minus everything ever topped up.
	OwnerFunding = "sys_funding"
	// OwnerPlatform collects platform fees.
	OwnerPlatform = "sys_platform"
)

// AccountFlags constrain an account's balance.
type AccountFlags uint32

const (
	// DebitsMustNotExceedCredits: posted plus pending debits may never exceed
	// posted credits, i.e. the account can never go negative.
	DebitsMustNotExceedCredits AccountFlags = 1 << iota
)

// Account is a ledger account: one owner, one currency. Balances are sums of
// transfers in minor units (TigerBeetle's model): available to spend for a
// debit-normal wallet is CreditsPosted - DebitsPosted - DebitsPending.
type Account struct {
	ID             int64
	Owner          string
	Currency       string
	Flags          AccountFlags
	DebitsPending  int64
	DebitsPosted   int64
	CreditsPending int64
	CreditsPosted  int64
}

// Available is what the owner may spend: posted credits less posted and
// pending debits.
func (a *Account) Available() int64 { return a.CreditsPosted - a.DebitsPosted - a.DebitsPending }

// TransferKind tells how a transfer moves balances.
type TransferKind uint8

const (
	// TransferPosted moves Amount at once.
	TransferPosted TransferKind = iota
	// TransferPending holds Amount until it is posted, voided or expires.
	TransferPending
	// TransferPost settles the pending transfer PendingID: Amount (at most
	// the held amount) moves, the whole hold is released.
	TransferPost
	// TransferVoid releases the pending transfer PendingID; Amount is the
	// released hold. An expiry is a void.
	TransferVoid
)

// Transfer is one immutable ledger entry: Amount moves from the debit
// account to the credit account (both in Currency). Ref names the domain
// object that caused it (pay_…, re_…, top_…).
type Transfer struct {
	ID              int64
	Kind            TransferKind
	DebitAccountID  int64
	CreditAccountID int64
	Amount          int64
	Currency        string
	PendingID       int64
	// Timeout is when a pending transfer expires (zero: never).
	Timeout   time.Time
	Ref       string
	CreatedAt time.Time
}
