package paybound

import "time"

// The settlement report (internal/settlement, GET /v1/reports/settlement)
// lists every movement of a merchant's balance over a period, one ledger
// transfer a row, so that its net per currency is the change of the
// merchant's ledger balance. Its types are here so that the client reads
// what the server writes.

// Settlement row types.
const (
	SettlementCapture = "capture" // a payment captured: its amount, credited
	SettlementFee     = "fee"     // the platform's fee on a capture, debited
	SettlementRefund  = "refund"  // a refund, less the fee the platform returns with it, debited
	// SettlementDisputeRefund is a refund that resolved a dispute with the
	// merchant liable.
	SettlementDisputeRefund = "dispute_refund"
	// SettlementAdjustment is any other movement (none today).
	SettlementAdjustment = "adjustment"
)

// ErrReportTooLarge refuses a report of a period that holds more
// movements than a report may: ask for shorter periods.
const ErrReportTooLarge Code = "report_too_large"

func init() { codeTypes[ErrReportTooLarge] = TypeInvalidRequest }

// SettlementRow is one movement of the merchant's balance.
type SettlementRow struct {
	// TransferID is the ledger transfer that moved the balance.
	TransferID int64     `json:"transfer_id"`
	CreatedAt  time.Time `json:"created_at"`
	Type       string    `json:"type"`
	Currency   string    `json:"currency"`
	// Amount is signed, in minor units: what the row added to the
	// merchant's balance (negative for fees and refunds).
	Amount int64 `json:"amount"`
	// FeeReturned, on a refund, is the part of the refund that the
	// platform paid back to the payer out of its fee: the payer got
	// -Amount + FeeReturned.
	FeeReturned int64 `json:"fee_returned"`
	// Balance is the running total of Amount in this currency since the
	// period's start.
	Balance int64 `json:"balance"`
	// PaymentID is the payment the movement belongs to.
	PaymentID string `json:"payment_id"`
	// SourceID is the object that caused it: the payment (pay_…) for a
	// capture and its fee, the refund (re_…) for a refund.
	SourceID string `json:"source_id"`
	// Reference is the payment's metadata "reference" when it has one,
	// else the payment link it was paid through, if any.
	Reference string `json:"reference"`
	// PaymentLink is the payment link the payment was made through, as
	// the link recorded it (not as the payment's metadata says).
	PaymentLink string `json:"payment_link"`
	Description string `json:"description"`
}

// SettlementSummary is a currency's totals over the period. Net, the sum of every
// row, equals the change of the merchant's posted balance in Currency.
type SettlementSummary struct {
	Currency       string `json:"currency"`
	Count          int    `json:"count"`
	Captures       int64  `json:"captures"`
	Fees           int64  `json:"fees"`
	Refunds        int64  `json:"refunds"`
	DisputeRefunds int64  `json:"dispute_refunds"`
	Adjustments    int64  `json:"adjustments"`
	// FeesReturned is what the platform returned to payers with refunds;
	// it is not part of Net (the merchant did not pay it).
	FeesReturned int64 `json:"fees_returned"`
	Net          int64 `json:"net"`
}

// SettlementReport is a merchant's settlement report for [From, To).
type SettlementReport struct {
	Object     string              `json:"object"` // "settlement_report"
	MerchantID string              `json:"merchant_id"`
	From       time.Time           `json:"from"`
	To         time.Time           `json:"to"`
	Summary    []SettlementSummary `json:"summary"`
	Rows       []SettlementRow     `json:"rows"`
}
