package paybound

import (
	"context"
	"time"
)

// SettlementStore is what the settlement report (internal/settlement)
// reads: the posted movements of a merchant's ledger accounts, with the
// payment and refund each came from. It writes nothing of its own.
type SettlementStore interface {
	// MerchantTransfers returns, in (CreatedAt, ID) order, up to f.Limit
	// transfers that moved the posted balance of one of f.MerchantID's
	// accounts (captures posted to it, fees and refunds posted from it;
	// holds and voids move pending balances only and are left out), created
	// in [f.From, f.To) and after the cursor (f.AfterTime, f.AfterID).
	MerchantTransfers(ctx context.Context, f MerchantTransferFilter) ([]MerchantTransfer, error)
}

// MerchantTransferFilter selects a page of a merchant's movements. Times
// are compared to the millisecond, as the ledger stores them.
type MerchantTransferFilter struct {
	MerchantID string
	From, To   time.Time
	// AfterTime and AfterID are the last row of the previous page (zero:
	// from the start).
	AfterTime time.Time
	AfterID   int64
	Limit     int
}

// MerchantTransfer is one posted transfer as a merchant's account saw it.
type MerchantTransfer struct {
	ID   int64
	Kind TransferKind
	// Amount is signed: positive when it credited the merchant, negative
	// when it debited the merchant.
	Amount   int64
	Currency string
	// Ref is what caused the transfer (pay_…, re_…).
	Ref string
	// Counterparty owns the transfer's other account (a wallet's user,
	// sys_platform for a fee).
	Counterparty string
	CreatedAt    time.Time
	// PaymentID is the payment Ref names, or the refund's payment ("" when
	// Ref is neither).
	PaymentID string
	// RefundAmount and RefundReason are the refund's, when Ref is one: its
	// full amount, of which the merchant pays -Amount and the platform the
	// fee it returns.
	RefundAmount int64
	RefundReason string
	// Description and Metadata are the payment's.
	Description string
	Metadata    map[string]string
	// PayLinkID is the payment link the payment was made through, as the
	// link recorded it ("" for none).
	PayLinkID string
}
