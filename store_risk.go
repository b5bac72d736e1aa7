package paybound

import (
	"context"
	"time"
)

// RiskStore is the storage of risk control (internal/riskctl): its
// reads of a payer's earlier payments, the operator's risk rules and
// merchant flags.
type RiskStore interface {
	// RecentPayments returns up to limit (at most MaxRecentPayments) of a
	// payer's payments, newest first, each with its merchant's category.
	RecentPayments(ctx context.Context, payerID string, limit int) ([]RecentPayment, error)
	// PaidMerchant reports whether one of the payer's last
	// MaxPaidMerchantScan payments went to merchantID and moved money
	// (status authorized, captured or refunded).
	PaidMerchant(ctx context.Context, payerID, merchantID string) (bool, error)
	// PayerActivity tallies the payments q selects as q.Add does, reading
	// at most MaxActivityScan of them (the newest) through the payer's
	// index. Risk control asks it of a SharedStore, for what other
	// processes did since it read the payer's recent payments.
	PayerActivity(ctx context.Context, q ActivityQuery) (Activity, error)
	// RiskRules returns the operator's risk rules, by name.
	RiskRules(ctx context.Context) ([]RiskRule, error)
	// PutRiskRule inserts r, or replaces the rule named r.Name.
	PutRiskRule(ctx context.Context, r RiskRule) error
	// DeleteRiskRule removes the rule name, or returns an ErrNotFound error.
	DeleteRiskRule(ctx context.Context, name string) error
	// AllMerchantFlags returns every flagged merchant's flags, by merchant.
	AllMerchantFlags(ctx context.Context) ([]MerchantFlags, error)
	// SetMerchantFlags replaces f.MerchantID's flags; no flags removes them.
	SetMerchantFlags(ctx context.Context, f MerchantFlags) error
}

// RecentPayment is what risk control reads of a payer's earlier payment.
type RecentPayment struct {
	ID          string
	MerchantID  string
	Category    string // the merchant's
	AgentID     string
	MandateID   string
	Currency    string
	Amount      int64
	Status      PaymentStatus
	DeclineCode Code
	CreatedAt   time.Time
}

// Bounds of risk control's reads: a payer's recent payments, and how far
// back PaidMerchant looks.
const (
	MaxRecentPayments   = 512
	MaxPaidMerchantScan = 10_000
)
