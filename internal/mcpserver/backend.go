package mcpserver

import (
	"context"
	"encoding/json"
	"time"

	pb "github.com/paybound/paybound"
)

// Backend is what the MCP tools call, bound to one caller (an agent or a
// merchant): the server's own operations in process for /mcp
// (InProcess.For), or the REST API through the Go SDK for the stdio
// command (cmd/paybound's remote backend). Every method returns a coded
// *pb.Error (in its chain) for what the caller can act on; anything else
// is an internal error the tools answer without detail.
//
// Methods that move money or create a resource take an idempotency key,
// which the backend scopes to the caller and to the operation, so a retry
// with the same key and arguments answers the first outcome and one with
// other arguments is refused (idempotency_conflict), whichever backend runs
// it. The mandate, confirmation and risk checks are the server's: a
// backend adds none and can skip none.
type Backend interface {
	// Caller is who the backend acts as.
	Caller(ctx context.Context) (Identity, error)

	// Agent side.
	Mandates(ctx context.Context, startingAfter string, limit int) ([]Mandate, bool, error)
	// RequestMandate asks the agent's user for a mandate of p's terms: a
	// mandate request that waits in the user's wallet until they approve
	// (which grants exactly these terms) or refuse it. The terms are
	// checked as POST /v1/mandates checks them; nothing is granted here.
	RequestMandate(ctx context.Context, key string, p MandateRequestParams) (*pb.MandateRequest, error)
	// WalletURL is where the caller's user decides request id (its
	// wallet's page, absolute), or "" when the backend does not know.
	WalletURL(id string) string
	// Pay creates a payment under a mandate. A declined payment returns
	// both the payment (when the backend has it) and the decline's error,
	// which carries its ID.
	Pay(ctx context.Context, key string, p PayParams) (*pb.Payment, error)
	Payment(ctx context.Context, id string) (*pb.Payment, error)
	Payments(ctx context.Context, startingAfter string, limit int) ([]pb.Payment, bool, error)
	OpenDispute(ctx context.Context, key, paymentID string, reason pb.DisputeReason, details string) (*pb.Dispute, error)
	// PayX402 fetches a paid URL, paying its x402 402 with an
	// authorization of the agent's under r.MandateID, at most r.MaxAmount
	// (above it, ErrX402PriceAboveMax and nothing is paid). The mandate is
	// the server's to enforce, at settlement. The same key retries the
	// same purchase and never pays twice; with other arguments it is
	// idempotency_conflict.
	PayX402(ctx context.Context, key string, r X402Request) (*X402Response, error)
	// CallPaidTool calls a seller's paid MCP tool (x402 over MCP), paying
	// as PayX402 pays a URL.
	CallPaidTool(ctx context.Context, key string, c PaidToolCall) (*PaidToolResult, error)

	// Checkout runs one of ACP's checkout operations at a merchant (ACP's
	// MCP binding): the payload is ACP's request body, the answer ACP's
	// CheckoutSession, both as JSON.
	Checkout(ctx context.Context, op CheckoutOp) (json.RawMessage, error)

	// Merchant side.
	Balances(ctx context.Context) ([]pb.Balance, error)
	CreatePaymentLink(ctx context.Context, key string, p LinkParams) (*pb.PayLink, error)
	Capture(ctx context.Context, key, id string, amount *int64) (*pb.Payment, error)
	Cancel(ctx context.Context, key, id string) (*pb.Payment, error)
	Refund(ctx context.Context, key, id string, amount *int64, reason string) (*pb.Refund, error)
	Disputes(ctx context.Context, status, startingAfter string, limit int) ([]pb.Dispute, bool, error)
	Settlement(ctx context.Context, from, to time.Time) (*pb.SettlementReport, error)
}

// Identity is the caller a backend acts as.
type Identity struct {
	Role   pb.Role
	ID     string
	UserID string // an agent's user
}

// Mandate is a mandate with its usage, as the API shows it.
type Mandate struct {
	pb.Mandate
	RemainingBudget int64 `json:"remaining_budget"`
	PaymentsCount   int64 `json:"payments_count"`
}

// PayParams is a payment an agent asks for under a mandate.
type PayParams struct {
	MerchantID  string
	Amount      int64
	Currency    string
	Description string
	MandateID   string
	// PayeeProvenance and AmountProvenance say where the agent took the
	// payee and the amount from: "user", "untrusted" or "unknown" ("").
	PayeeProvenance, AmountProvenance string
}

// MandateRequestParams is a mandate an agent asks its user for.
type MandateRequestParams struct {
	Description  string
	Reason       string
	Currency     string
	MaxAmount    int64
	BudgetAmount int64
	BudgetPeriod pb.BudgetPeriod
	MerchantIDs  []string
	ConfirmAbove int64
}

// Mandate is the mandate p asks for, for the calling agent ("").
func (p MandateRequestParams) Mandate() pb.Mandate {
	return pb.Mandate{Description: p.Description, Currency: p.Currency, MaxAmount: p.MaxAmount,
		Budget: pb.Budget{Amount: p.BudgetAmount, Period: p.BudgetPeriod}, MerchantIDs: p.MerchantIDs, ConfirmAbove: p.ConfirmAbove}
}

// LinkParams is a payment link a merchant creates.
type LinkParams struct {
	Amount      int64
	Currency    string
	Description string
	ExpiresAt   time.Time // zero: none
	MaxUses     int64     // 0: no limit
}

// CheckoutOp is one ACP checkout operation.
type CheckoutOp struct {
	Kind       string // create, get, update, complete or cancel
	MerchantID string
	SessionID  string // all but create
	Key        string // ACP's idempotency key (meta.idempotency_key); all but get
	Payload    json.RawMessage
}
