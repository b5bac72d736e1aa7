package paybound

import "time"

// A dispute is a payer's claim that a captured payment went wrong. The
// server reconstructs the payment from the transparency log, proposes who
// is at fault and why, and an operator resolves it: a refund from the
// merchant, a compensation from the platform's fund, or a rejection, all in
// the ledger and the log.

// DisputeReason is why the payer disputes a payment.
type DisputeReason string

const (
	ReasonNotAsIntended DisputeReason = "not_as_intended"
	ReasonUnauthorized  DisputeReason = "unauthorized"
	ReasonMerchantError DisputeReason = "merchant_error"
	ReasonDuplicate     DisputeReason = "duplicate"
	ReasonOther         DisputeReason = "other"
)

// DisputeReasons lists every reason, for validation and docs.
var DisputeReasons = []DisputeReason{ReasonNotAsIntended, ReasonUnauthorized, ReasonMerchantError, ReasonDuplicate, ReasonOther}

// Attribution is where the evidence places the fault.
type Attribution string

const (
	// AttributionUserIntentUnclear: the payment was within the mandate as
	// the user wrote it; the mandate, not the agent, allowed it.
	AttributionUserIntentUnclear Attribution = "user_intent_unclear"
	// AttributionAgentOutOfScope: the agent asked for something its mandate
	// did not cover and it got through (a confirmation the user approved, a
	// bearer key where a signature was due).
	AttributionAgentOutOfScope Attribution = "agent_out_of_scope"
	// AttributionMerchantError: the merchant captured more than ordered,
	// after a cancel, or twice.
	AttributionMerchantError Attribution = "merchant_error"
	// AttributionNone: the log shows nothing at fault.
	AttributionNone Attribution = "none"
)

// Dispute outcomes and liable parties.
const (
	OutcomeRefundFull    = "refund_full"
	OutcomeRefundPartial = "refund_partial"
	OutcomeReject        = "reject"

	LiableMerchant      = "merchant"
	LiableAgentOperator = "agent_operator"
	LiablePlatform      = "platform"
	LiableUser          = "user"
)

// Dispute statuses.
const (
	DisputeOpen     = "open"
	DisputeResolved = "resolved"
)

// Limits of a dispute's text.
const MaxDisputeDetails = 2000

// Dispute is a payer's dispute of a payment. Amount is what was captured
// and not yet refunded when it was opened.
type Dispute struct {
	ID         string        `json:"id"`
	Object     string        `json:"object"`
	PaymentID  string        `json:"payment_id"`
	PayerID    string        `json:"payer_id"`
	MerchantID string        `json:"merchant_id"`
	AgentID    OptString     `json:"agent_id"`
	Status     string        `json:"status"`
	Reason     DisputeReason `json:"reason"`
	Details    string        `json:"details"`
	Amount     int64         `json:"amount"`
	Currency   string        `json:"currency"`
	Proposal   Proposal      `json:"proposal"`
	Resolution *Resolution   `json:"resolution"`
	CreatedAt  time.Time     `json:"created_at"`
}

// Proposal is the server's reading of the evidence: an attribution, the
// check that let the payment through, an explanation a person can follow,
// and the log entries it rests on.
type Proposal struct {
	Attribution Attribution `json:"attribution"`
	Check       string      `json:"check"`
	Explanation string      `json:"explanation"`
	Evidence    []int64     `json:"evidence"` // log indexes
}

// Resolution is the operator's decision and what it moved.
type Resolution struct {
	Outcome        string    `json:"outcome"`
	Amount         int64     `json:"amount"`
	LiableParty    string    `json:"liable_party"`
	RefundID       string    `json:"refund_id,omitempty"`
	CompensationID string    `json:"compensation_id,omitempty"`
	ResolvedAt     time.Time `json:"resolved_at"`
}

// OwnerCompensation is the platform's compensation fund: compensations the
// platform pays (for an agent operator's or its own fault) come from it.
// It may go negative: its balance is what the platform has put in, less
// what it has paid out.
const OwnerCompensation = "sys_compensation"

// DisputeFilter selects disputes for a list, newest first; as
// PaymentFilter, set PayerID or MerchantID (none: all, for the operator).
type DisputeFilter struct {
	PayerID       string
	MerchantID    string
	Status        string
	StartingAfter string
	Limit         int
}
