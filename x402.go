package paybound

import "time"

// x402 (internal/x402pay, the public package x402): agents pay for HTTP
// resources with x402 v2 authorizations signed with their keys; the
// facilitator settles each as a payment under the agent's mandate.

// MetadataX402Nonce is the payment metadata key that names the x402
// authorization (its nonce) a payment settled.
const MetadataX402Nonce = "x402_nonce"

// Errors of settling an x402 authorization. Nothing is changed.
const (
	// ErrX402AuthorizationUsed: the authorization was settled before (under
	// another payment identifier); it pays once.
	ErrX402AuthorizationUsed Code = "x402_authorization_used"
	// ErrX402ConfirmationRequired: the payment would wait for the user's
	// confirmation, and no one is there to give it during an HTTP request.
	ErrX402ConfirmationRequired Code = "x402_confirmation_required"
)

// Errors of paying for a resource through the MCP tool pay_x402_resource.
// Nothing is paid.
const (
	// ErrX402PriceAboveMax: the resource asks more than the call's
	// max_amount.
	ErrX402PriceAboveMax Code = "x402_price_above_max"
	// ErrX402NotPayable: the resource asks a payment Paybound cannot make
	// (another network, asset or scheme), or its 402 is malformed.
	ErrX402NotPayable Code = "x402_not_payable"
	// ErrX402PaymentFailed: the seller or its facilitator refused the
	// payment; the message carries x402's reason.
	ErrX402PaymentFailed Code = "x402_payment_failed"
)

func init() {
	codeTypes[ErrX402AuthorizationUsed] = TypeConflict
	codeTypes[ErrX402ConfirmationRequired] = TypeDeclined
	codeTypes[ErrX402PriceAboveMax] = TypeDeclined
	codeTypes[ErrX402NotPayable] = TypeInvalidRequest
	codeTypes[ErrX402PaymentFailed] = TypeDeclined
}

// A tab is the ledger binding of x402's batch-settlement scheme: an agent
// deposits into a tab with a seller (a hold under its mandate, a payment
// with manual capture), pays each request with a cumulative voucher that
// the seller checks and keeps, and the seller claims the latest voucher
// once: the hold is captured for the claimed amount rounded up to the
// minor unit, and the rest released. A tab that is not claimed by its
// expiry is released whole (the payment's hold expires).

// PrefixTab is the ID prefix of tabs.
const PrefixTab = "tab_"

// TabStatus is where a tab is in its life.
type TabStatus string

// A tab is open until it is claimed (captured), closed by its payer (a
// grace period for the seller's claim, then released), or expired.
const (
	TabOpen     TabStatus = "open"
	TabClosing  TabStatus = "closing"
	TabClaiming TabStatus = "claiming"
	TabClaimed  TabStatus = "claimed"
	TabReleased TabStatus = "released"
	TabExpired  TabStatus = "expired"
)

// Errors of tabs.
const (
	// ErrTabState: the tab can't do that now (claimed, released, expired).
	ErrTabState Code = "tab_unexpected_state"
	// ErrVoucherInvalid: a claim's voucher is not the payer's, or is above
	// the deposit, or below what it claims.
	ErrVoucherInvalid Code = "voucher_invalid"
)

func init() {
	codeTypes[ErrTabState] = TypeConflict
	codeTypes[ErrVoucherInvalid] = TypeInvalidRequest
}

// Tab is a tab. Deposit is in minor units (the hold), DepositAtomic the
// same in x402's atomic units; Claimed is the cumulative amount claimed in
// atomic units and Captured what the hold was captured for (Claimed rounded
// up to the minor unit). Vouchers and ChainHead are the seller's count and
// hash chain of the vouchers it accepted (docs/x402.md), as the claim
// stated them, so the payer can compare them with its own. PublicKey is
// the paying key's Ed25519 x (unpadded base64url), which verifies vouchers.
// Version is the store's optimistic-concurrency counter.
type Tab struct {
	ID            string     `json:"id"`
	Object        string     `json:"object"`
	MerchantID    string     `json:"merchant_id"`
	AgentID       string     `json:"agent_id"`
	UserID        string     `json:"user_id"`
	MandateID     string     `json:"mandate_id"`
	KeyID         string     `json:"keyid"`
	PublicKey     string     `json:"public_key"`
	PaymentID     string     `json:"payment_id"`
	Network       string     `json:"network"`
	Currency      string     `json:"currency"`
	Deposit       int64      `json:"deposit"`
	DepositAtomic int64      `json:"deposit_atomic"`
	Claimed       int64      `json:"claimed_atomic"`
	Captured      int64      `json:"captured"`
	Vouchers      int64      `json:"vouchers"`
	ChainHead     string     `json:"chain_head"`
	Status        TabStatus  `json:"status"`
	CloseAt       *time.Time `json:"close_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	CreatedAt     time.Time  `json:"created_at"`
	Version       int64      `json:"-"`
}
