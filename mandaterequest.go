package paybound

import "time"

// A mandate request is an agent asking its user for a mandate: the terms
// it wants, as POST /v1/mandates takes them, and a reason in the agent's
// words. The user approves it, which grants a mandate with exactly those
// terms in the same ledger operation (once: a request is decided once), or
// refuses it; an undecided request expires MandateRequestLifetime after it
// was made.

// PrefixMandateRequest is the ID prefix of mandate requests.
const PrefixMandateRequest = "mreq_"

// The statuses of a mandate request. A request is stored pending until
// decided; it reads as expired once its ExpiresAt has passed undecided.
const (
	MandateRequestPending  = "pending"
	MandateRequestApproved = "approved"
	MandateRequestRefused  = "refused"
	MandateRequestExpired  = "expired"
)

// Limits of mandate requests.
const (
	// MandateRequestLifetime is how long a request waits for its user.
	MandateRequestLifetime = 7 * 24 * time.Hour
	// MaxPendingMandateRequests is how many requests one agent may have
	// waiting at once: an agent cannot flood its user.
	MaxPendingMandateRequests = 20
	// MaxMandateRequestReason bounds the reason, in bytes.
	MaxMandateRequestReason = 1000
)

// ErrMandateRequestState: the request was already decided, or expired.
// Nothing is changed.
const ErrMandateRequestState Code = "mandate_request_unexpected_state"

// ErrTooManyMandateRequests: the agent has MaxPendingMandateRequests
// requests waiting already.
const ErrTooManyMandateRequests Code = "too_many_mandate_requests"

func init() {
	codeTypes[ErrMandateRequestState] = TypeConflict
	codeTypes[ErrTooManyMandateRequests] = TypeConflict
}

// MandateRequest is an agent's request for a mandate.
type MandateRequest struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "mandate_request"
	UserID  string `json:"user_id"`
	AgentID string `json:"agent_id"`
	// Status is pending, approved, refused or expired (see Shown).
	Status string `json:"status"`
	Reason string `json:"reason"`
	// Terms is the mandate asked for, as the agent gave it: no ID, user or
	// creation time; a zero ValidFrom means "from the approval".
	Terms Mandate `json:"terms"`
	// RequireSignature is the terms' require_signature, nil when the agent
	// left it to the operator's default.
	RequireSignature *bool `json:"require_signature,omitempty"`
	// MandateID is the mandate granted on approval.
	MandateID string     `json:"mandate_id,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	DecidedAt *time.Time `json:"decided_at"`
	// Version is the store's optimistic-concurrency counter: 1 when made,
	// 2 once decided.
	Version int64 `json:"-"`
}

// Shown is r as of now: a pending request past its ExpiresAt is expired.
func (r MandateRequest) Shown(now time.Time) MandateRequest {
	if r.Status == MandateRequestPending && !now.Before(r.ExpiresAt) {
		r.Status = MandateRequestExpired
	}
	return r
}

// MandateRequestFilter selects mandate requests: a user's or an agent's
// (one of them is set), optionally only those stored with Status.
type MandateRequestFilter struct {
	UserID, AgentID string
	// Status "pending" selects the requests stored undecided, expired
	// ones included (the caller tells them apart with Shown).
	Status        string
	StartingAfter string
	Limit         int
}

// MandateTerms is a mandate's terms as the API takes them (POST
// /v1/mandates and the terms of POST /v1/mandate_requests): pointers where
// the API must tell a missing field from a zero.
type MandateTerms struct {
	AgentID     string `json:"agent_id"`
	Description string `json:"description"`
	Currency    string `json:"currency"`
	MaxAmount   *int64 `json:"max_amount"`
	Budget      *struct {
		Amount *int64       `json:"amount"`
		Period BudgetPeriod `json:"period"`
	} `json:"budget"`
	MerchantIDs      []string  `json:"merchant_ids"`
	Categories       []string  `json:"merchant_categories"`
	ValidFrom        *string   `json:"valid_from"`
	ExpiresAt        *string   `json:"expires_at"`
	Schedule         *Schedule `json:"schedule"`
	MaxPayments      int64     `json:"max_payments"`
	ConfirmAbove     int64     `json:"confirm_above"`
	Condition        string    `json:"condition"`
	RequireSignature *bool     `json:"require_signature"`
}

// Mandate returns the mandate t describes, unvalidated (Mandate.Validate
// checks it), or ErrParameterMissing for a missing required field
// (agentRequired: agent_id) and ErrParameterInvalid for a time that is not
// RFC 3339, naming the field.
func (t *MandateTerms) Mandate(agentRequired bool) (Mandate, error) {
	switch {
	case agentRequired && t.AgentID == "":
		return Mandate{}, Errorf(ErrParameterMissing, "agent_id", "agent_id is required: the agent the mandate is for")
	case t.MaxAmount == nil:
		return Mandate{}, Errorf(ErrParameterMissing, "max_amount", "max_amount is required: the most one payment may be, in minor units")
	case t.Budget == nil || t.Budget.Amount == nil:
		return Mandate{}, Errorf(ErrParameterMissing, "budget.amount", "budget.amount is required: what the agent may spend per budget.period")
	case t.Currency == "":
		return Mandate{}, Errorf(ErrParameterMissing, "currency", "currency is required: an ISO 4217 code such as USD")
	}
	m := Mandate{AgentID: t.AgentID, Description: t.Description, Currency: t.Currency, MaxAmount: *t.MaxAmount,
		Budget: Budget{Amount: *t.Budget.Amount, Period: t.Budget.Period}, MerchantIDs: t.MerchantIDs,
		Categories: t.Categories, Schedule: t.Schedule, MaxPayments: t.MaxPayments, ConfirmAbove: t.ConfirmAbove,
		Condition: t.Condition}
	var err error
	if m.ValidFrom, err = parseTerm(t.ValidFrom, "valid_from"); err != nil {
		return Mandate{}, err
	}
	exp, err := parseTerm(t.ExpiresAt, "expires_at")
	if err != nil {
		return Mandate{}, err
	}
	if !exp.IsZero() {
		m.ExpiresAt = &exp
	}
	return m, nil
}

func parseTerm(v *string, param string) (time.Time, error) {
	if v == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return time.Time{}, Errorf(ErrParameterInvalid, param, "%s must be an RFC 3339 timestamp such as 2026-12-01T09:00:00Z", param)
	}
	return t, nil
}
