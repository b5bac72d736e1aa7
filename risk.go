package paybound

import (
	"encoding/json"
	"math"
	"strings"
	"time"
)

// RiskDecision is what the risk engine made of a payment attempt.
type RiskDecision string

const (
	RiskAllow  RiskDecision = "allow"
	RiskReview RiskDecision = "review" // the user confirms it, even inside a mandate
	RiskBlock  RiskDecision = "block"  // declined with DeclineRiskBlocked
)

// DeclineRiskBlocked is the decline code of a payment risk control blocked.
const DeclineRiskBlocked Code = "risk_blocked"

// DeclineGeneric is the decline code a merchant sees in place of every
// other: why a payment was declined (risk control, the payer's mandate,
// the payer's wallet) is the payer's business, and a merchant that learned
// which check refused a payment could adjust its requests until none did.
const DeclineGeneric Code = "generic_decline"

// RiskSignal is one built-in check that fired, with the points it added to
// the score and the reason, written for the person who reads it.
type RiskSignal struct {
	Name   string `json:"name"`
	Points int    `json:"points"`
	Reason string `json:"reason,omitempty"` // not shown to agents
}

// Risk is the risk engine's assessment of a payment attempt, made before
// its hold and kept on the payment and in its log entry. (Fields in the
// order of their JSON names: see EncodeLogEntry.)
type Risk struct {
	Decision RiskDecision `json:"decision"`
	// Rule names the operator's rule that decided, if one did; otherwise
	// the score did.
	Rule    string       `json:"rule,omitempty"`
	Score   int          `json:"score"`
	Signals []RiskSignal `json:"signals"`

	// Input is what the engine saw (internal/risk.Input as JSON), without
	// what the payment itself records (amount, currency, parties,
	// description, metadata, assurance): kept so that an operator can
	// replay recorded attempts against new rules. InputHash is the SHA-256
	// of the whole input, as logged; it is not stored. Neither is part of
	// the payment's API representation.
	Input     json.RawMessage `json:"-"`
	InputHash [32]byte        `json:"-"`
	// Commitment is the risk_sha256 the payment.created entry logs (see
	// RiskOpening), computed with the assessment; it is not stored.
	Commitment string `json:"-"`
	// Partial marks the assessment as an agent sees it: MarshalJSON
	// writes only the decision and the signals' names.
	Partial bool `json:"-"`
}

// MarshalJSON writes r as the API shows it; a Partial r (an agent's view)
// has no score, rule or points, which would tell whoever reads what the
// agent read how near the payment came to another decision.
func (r Risk) MarshalJSON() ([]byte, error) {
	type plain Risk // r's fields, without this method
	if !r.Partial {
		return json.Marshal(plain(r))
	}
	type name struct {
		Name string `json:"name"`
	}
	v := struct {
		Decision RiskDecision `json:"decision"`
		Signals  []name       `json:"signals"`
	}{r.Decision, make([]name, len(r.Signals))}
	for i, sg := range r.Signals {
		v.Signals[i].Name = sg.Name
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes: an assessment without a
// score is an agent's view, and is read as Partial, so that a client does
// not take the score it was not shown for a score of 0.
func (r *Risk) UnmarshalJSON(b []byte) error {
	type plain Risk // r's fields, without this method
	v := struct {
		*plain
		Score *int `json:"score"` // shadows plain's, to see whether it is there
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Score, r.Partial = 0, v.Score == nil
	if v.Score != nil {
		r.Score = *v.Score
	}
	return nil
}

// Columns is how a store keeps r: the assessment's JSON without its
// input, and the input; both empty for nil (a payment not assessed).
func (r *Risk) Columns() (risk, input string) {
	if r == nil {
		return "", ""
	}
	// Stored whole, whatever view r was made for; encoded without
	// MarshalJSON, which costs a pass more on every payment written.
	type plain Risk
	full := plain(*r)
	full.Partial = false
	data, _ := json.Marshal(&full) // plain fields: it always encodes
	return string(data), string(r.Input)
}

// DecodeRiskColumns reverses Columns.
func DecodeRiskColumns(risk, input string) (*Risk, error) {
	if risk == "" {
		return nil, nil
	}
	type plain Risk // stored whole: read without UnmarshalJSON's pass
	var p plain
	if err := json.Unmarshal([]byte(risk), &p); err != nil {
		return nil, err
	}
	r := Risk(p)
	if input != "" {
		r.Input = json.RawMessage(input)
	}
	return &r, nil
}

// Provenance values: where an agent took a payment's payee or amount from.
const (
	ProvenanceUnknown   = "unknown" // the default
	ProvenanceUser      = "user"    // the user said so
	ProvenanceUntrusted = "untrusted"
)

// RiskRule is an operator's rule: when Expression (CEL) holds for an
// attempt, the attempt gets Action. See internal/risk.Rule for the order
// rules run in.
type RiskRule struct {
	Name       string       `json:"name"`
	Expression string       `json:"expression"`
	Action     RiskDecision `json:"action"`
	Priority   int          `json:"priority"`
	CreatedAt  time.Time    `json:"created_at"`
	// Error is set on a stored rule this server cannot compile (written
	// by a newer one, say): it is not run.
	Error string `json:"error,omitempty"`
}

// MerchantFlags are the operator's risk flags on one merchant
// ("suspected_fraud", …); every attempt to pay a flagged merchant carries
// the merchant_flagged signal.
type MerchantFlags struct {
	MerchantID string    `json:"merchant_id"`
	Flags      []string  `json:"flags"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// FlagsColumn is how a store keeps f's flags: a JSON array.
func (f *MerchantFlags) FlagsColumn() string {
	b, _ := json.Marshal(f.Flags) // a []string always encodes
	return string(b)
}

// DecodeFlagsColumn reverses FlagsColumn; a stored row always has a list.
func DecodeFlagsColumn(data string) ([]string, error) {
	var flags []string
	if err := json.Unmarshal([]byte(data), &flags); err != nil {
		return nil, err
	}
	if flags == nil {
		flags = []string{}
	}
	return flags, nil
}

// Risk configuration limits.
const (
	MaxRiskRules     = 200
	MaxMerchantFlags = 10
	MaxFlagLength    = 40
	// MaxFlaggedMerchants bounds how many merchants carry flags: every
	// server keeps them all in memory.
	MaxFlaggedMerchants = 100_000
)

// RiskAttempt is one payment attempt as risk control assessed it, with
// what the engine saw (Input, internal/risk.Input as JSON), so that it can
// be replayed against other rules: what GET /v1/risk/attempts lists,
// `paybound risk export` writes and `paybound risk replay` reads.
type RiskAttempt struct {
	PaymentID string          `json:"payment_id"`
	CreatedAt time.Time       `json:"created_at"`
	Status    PaymentStatus   `json:"status"`
	Risk      *Risk           `json:"risk"`
	Input     json.RawMessage `json:"input"`
	// Label is the operator's verdict, for replay's confusion table:
	// "fraud" or "legit" (absent when unknown).
	Label string `json:"label,omitempty"`
}

// ActivityQuery selects a payer's payments made from an instant on (IDs
// from SinceID, at most MaxActivityScan of the newest), and names what
// Activity tallies them by: what risk control asks of a store that other
// processes write too, about the payments its copy of the payer's recent
// ones may lack.
type ActivityQuery struct {
	PayerID string
	// SinceID is IDFloor(PrefixPayment, t): payments made at t or later.
	SinceID string
	// AgentID and MandateID are the attempt's ("" tallies nothing);
	// MerchantID and Amount the attempt's payee and amount.
	AgentID, MandateID, MerchantID string
	Amount                         int64
}

// ActivityTally counts payments and sums their amounts (minor units, in
// whatever currency; the sum stops at math.MaxInt64).
type ActivityTally struct{ Count, Sum int64 }

// Activity is the payments an ActivityQuery selects, tallied as risk
// control's velocities and declines count them (internal/risk.Input).
type Activity struct {
	// Agent, Mandate and Payee tally the payments not declined that the
	// agent made, that were made under the mandate, and that went to the
	// merchant.
	Agent, Mandate, Payee ActivityTally
	// Declines counts the agent's payments declined other than by risk
	// control, to another merchant or of another amount than the attempt.
	Declines int64
	// PaidMerchant says whether one of them moved money to the merchant
	// (status authorized, captured or refunded).
	PaidMerchant bool
	// Scanned is how many payments were read: MaxActivityScan when there
	// were more, whose oldest the tallies then leave out.
	Scanned int64
}

// MaxActivityScan bounds the payments one ActivityQuery reads.
const MaxActivityScan = 4096

// Add tallies p, one of the payments q selects, into a: what a store's
// PayerActivity computes (in SQL or not) for each payment it reads, and
// what risk control computes over its own copy to tell what it lacks.
func (q *ActivityQuery) Add(a *Activity, p *RecentPayment) {
	a.Scanned++
	add := func(t *ActivityTally) {
		t.Count++
		t.Sum = min(t.Sum, math.MaxInt64-max(p.Amount, 0)) + max(p.Amount, 0)
	}
	byAgent := q.AgentID != "" && p.AgentID == q.AgentID
	if p.Status == StatusDeclined {
		if byAgent && p.DeclineCode != DeclineRiskBlocked && (p.MerchantID != q.MerchantID || p.Amount != q.Amount) {
			a.Declines++
		}
		return
	}
	if byAgent {
		add(&a.Agent)
	}
	if q.MandateID != "" && p.MandateID == q.MandateID {
		add(&a.Mandate)
	}
	if p.MerchantID == q.MerchantID {
		add(&a.Payee)
		if p.Status == StatusAuthorized || p.Status == StatusCaptured || p.Status == StatusRefunded {
			a.PaidMerchant = true
		}
	}
}

// IDFloor returns the smallest ID NewID can make with prefix at t's
// millisecond: the IDs made at t or later are those from it on, in the
// byte order IDs sort by (and stores compare them in).
func IDFloor(prefix string, t time.Time) string {
	id := NewID(prefix, t)
	// 26 base32 digits of 5 bits: the first 10 hold the 48 bits of
	// milliseconds (with 2 leading zero bits), the other 16 random bits only.
	return id[:len(prefix)+10] + strings.Repeat(crockford[:1], 16)
}
