package paybound

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Every party to a payment reads its log entries, but not every party may
// learn its risk assessment (docs/visibility.md): a merchant that read the
// score and the signals of the payments made to it could tune a scam until
// risk control let it through. So a payment.created entry records the
// assessment as a commitment, risk_sha256, and the server opens it, beside
// the entry, to the parties that may see it, who check the opening against
// the logged commitment.
//
// The commitment has two levels, so that an agent can check the part it
// may see (the decision and the signals' names) without learning the rest
// (the rule, the score, the points, the hash of the engine's input):
//
//	risk_sha256   = hex SHA-256 of the canonical JSON of
//	                {"decision", "detail_sha256", "salt", "signals": [name, …]}
//	detail_sha256 = hex SHA-256 of the canonical JSON of
//	                {"input_sha256", "rule" (when a rule decided), "salt",
//	                 "score", "signals": [{"name", "points"}, …]}
//
// (canonical JSON as in EncodeLogEntry: keys sorted, no white space). Each
// salt is 16 bytes, hex, derived one-way from the random salt of the
// engine's input, which the payment keeps: without it, the few decisions
// and scores there are could be tried one by one against the commitment,
// and the outer salt, which the agent reads, says nothing of the inner one.
// Entries logged before commitments were introduced carry the assessment
// in clear, as "risk"; those are withheld from the parties that may not
// read it instead.

// RiskOpening opens a payment.created entry's risk_sha256: the outer level,
// and, for the parties that may read it (the payer, the operator), Detail.
// (Fields in the order of their JSON names: see riskHash.)
type RiskOpening struct {
	Decision RiskDecision `json:"decision"`
	// Detail is not part of the outer level's hash: it opens DetailSHA256.
	Detail       *RiskDetail `json:"detail,omitempty"`
	DetailSHA256 string      `json:"detail_sha256"`
	Salt         string      `json:"salt"`
	Signals      []string    `json:"signals"`
}

// RiskDetail is the inner level of a risk commitment.
type RiskDetail struct {
	InputSHA256 string           `json:"input_sha256"`
	Rule        string           `json:"rule,omitempty"`
	Salt        string           `json:"salt"`
	Score       int              `json:"score"`
	Signals     []RiskSignalPart `json:"signals"`
}

// RiskSignalPart is a signal as a risk commitment holds it: without its
// reason, which speaks of the payer's balance and history and is never
// logged.
type RiskSignalPart struct {
	Name   string `json:"name"`
	Points int    `json:"points"`
}

// ErrRiskOpening is wrapped by every reason RiskOpening.Verify refuses an
// opening.
var ErrRiskOpening = errors.New("the risk opening does not match the logged commitment")

// OpenRisk returns the whole opening of r's commitment: r's InputHash must
// be set, and inputSalt is the salt of the input r was assessed on.
func OpenRisk(r *Risk, inputSalt string) (*RiskOpening, error) {
	if len(inputSalt) < 32 {
		return nil, errors.New("couldn't open a risk commitment: the assessed input has no salt")
	}
	d := &RiskDetail{InputSHA256: hex.EncodeToString(r.InputHash[:]), Rule: r.Rule, Salt: riskSalt("detail", inputSalt),
		Score: r.Score, Signals: make([]RiskSignalPart, len(r.Signals))}
	o := &RiskOpening{Decision: r.Decision, Salt: riskSalt("outer", inputSalt), Signals: make([]string, len(r.Signals)), Detail: d}
	for i, sg := range r.Signals {
		d.Signals[i] = RiskSignalPart{Name: sg.Name, Points: sg.Points}
		o.Signals[i] = sg.Name
	}
	var err error
	if o.DetailSHA256, err = riskHash(d); err != nil {
		return nil, err
	}
	return o, nil
}

// riskSalt derives one level's salt from the input's: a hash, so that one
// level's salt does not give away the other's.
func riskSalt(level, inputSalt string) string {
	h := sha256.Sum256([]byte("paybound/risk-commitment/v1/" + level + "\x00" + inputSalt))
	return hex.EncodeToString(h[:16])
}

// riskHash is the hex SHA-256 of v's canonical JSON: v's fields are in the
// order of their JSON names, and a nil list is encoded as an empty one.
func riskHash(v any) (string, error) {
	switch v := v.(type) {
	case *RiskOpening:
		if v.Signals == nil {
			c := *v
			c.Signals = []string{}
			return riskHash(&c)
		}
	case *RiskDetail:
		if v.Signals == nil {
			c := *v
			c.Signals = []RiskSignalPart{}
			return riskHash(&c)
		}
	}
	b, err := appendJSON(nil, v)
	if err != nil {
		return "", fmt.Errorf("couldn't encode a risk commitment: %w", err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// Commitment returns the risk_sha256 that o opens: the hash of its outer
// level.
func (o *RiskOpening) Commitment() (string, error) {
	outer := *o
	outer.Detail = nil
	return riskHash(&outer)
}

// Partial returns o without its Detail: what an agent may see.
func (o *RiskOpening) Partial() *RiskOpening {
	c := *o
	c.Detail = nil
	return &c
}

// Verify checks that o opens commitment (a logged risk_sha256) and, when o
// has its Detail, that the Detail opens o.DetailSHA256 and names the same
// signals in the same order. The errors wrap ErrRiskOpening.
func (o *RiskOpening) Verify(commitment string) error {
	got, err := o.Commitment()
	if err != nil {
		return err
	}
	if got != commitment {
		return fmt.Errorf("%w: decision, signals and salt hash to %s, the entry commits to %q", ErrRiskOpening, got, commitment)
	}
	if o.Detail == nil {
		return nil
	}
	if got, err = riskHash(o.Detail); err != nil {
		return err
	}
	if got != o.DetailSHA256 {
		return fmt.Errorf("%w: the detail hashes to %s, the opening commits to %s", ErrRiskOpening, got, o.DetailSHA256)
	}
	if len(o.Detail.Signals) != len(o.Signals) {
		return fmt.Errorf("%w: the detail has %d signals, the outer level %d", ErrRiskOpening, len(o.Detail.Signals), len(o.Signals))
	}
	for i, sg := range o.Detail.Signals {
		if sg.Name != o.Signals[i] {
			return fmt.Errorf("%w: signal %d is %q in the detail, %q in the outer level", ErrRiskOpening, i, sg.Name, o.Signals[i])
		}
	}
	return nil
}
