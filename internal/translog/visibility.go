package translog

import (
	"encoding/json"

	pb "github.com/paybound/paybound"
)

// What each party to a payment may read of its log entries. The table is
// docs/visibility.md; this is where it is kept, for every view of an entry
// the server gives: the trace, the receipt and GET /v1/log/entries/{index}.
// (What each party sees of the payment object is the core's: shown, in
// internal/service/payments.go.)
//
// An entry a party may not read is withheld from it whole: the tree holds
// the hash of the entry's exact bytes, so a part of an entry cannot be
// left out and the rest still be proven. A withheld entry is given with its
// leaf hash and inclusion proof when guessing its content from its leaf
// hash is hopeless, which the server can promise only for entries that
// carry a random salt (those logged since entries were withheld); an entry
// logged before that is given as withheld and nothing more.

// Why an entry is withheld: the TraceEntry's reason.
const (
	// withheldRisk: a payment.created entry logged before risk
	// commitments, with the risk assessment in clear (score, points,
	// rule, the input's hash).
	withheldRisk = "risk_in_clear"
	// withheldRequest: a payment.created entry holding the agent's signed
	// request, whose body carries risk control's inputs (provenance).
	withheldRequest = "agent_request"
	// withheldDecline: why the payment was declined (risk control, the
	// mandate, the wallet), which is the payer's business.
	withheldDecline = "decline_reason"
	// withheldConfirmation: why the payer was asked to confirm (risk
	// control's review, the mandate's confirm_above).
	withheldConfirmation = "confirmation_reason"
	// withheldRole: the caller's role is not a party's (never the case
	// after a party check; withheld rather than shown by default).
	withheldRole = "not_a_party"
)

// entryView is what a party may read of one entry.
type entryView struct {
	typ      string // the entry's type
	withheld string // why it is withheld; "" when it is shown
	leaf     bool   // a withheld entry's leaf hash may be given
	// commitment is a shown payment.created entry's risk_sha256, to open
	// to those who may: partial for an agent.
	commitment string
	partial    bool
}

// viewEntry returns what caller, a party to the entry's payment, may read
// of entry body. Only the payer and the operator read every entry.
func viewEntry(caller pb.Principal, body []byte) entryView {
	var e struct {
		Type string `json:"type"`
		Data struct {
			DeclineCode pb.Code         `json:"decline_code"`
			Request     json.RawMessage `json:"request"`
			Risk        json.RawMessage `json:"risk"`
			RiskSHA256  string          `json:"risk_sha256"`
			Salt        string          `json:"salt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		// The server's own entries always decode; withhold one that did not.
		return entryView{typ: "unknown", withheld: withheldRole}
	}
	v := entryView{typ: e.Type, commitment: e.Data.RiskSHA256}
	salted := e.Data.Salt != ""
	withhold := func(why string, leaf bool) entryView {
		return entryView{typ: e.Type, withheld: why, leaf: leaf}
	}
	switch caller.Role {
	case pb.RoleOperator, pb.RoleUser:
		return v
	case pb.RoleAgent:
		switch {
		case e.Type == pb.LogPaymentCreated && e.Data.Risk != nil:
			return withhold(withheldRisk, false)
		case e.Type == pb.LogPaymentDeclined && e.Data.DeclineCode == pb.DeclineRiskBlocked && !salted:
			// Logged with the old risk message: the score, or the rule's name.
			return withhold(withheldRisk, false)
		}
		v.partial = true
		return v
	case pb.RoleMerchant:
		switch {
		case e.Type == pb.LogPaymentCreated && e.Data.Risk != nil:
			return withhold(withheldRisk, false)
		case e.Type == pb.LogPaymentCreated && e.Data.Request != nil:
			return withhold(withheldRequest, salted)
		case e.Type == pb.LogPaymentDeclined:
			return withhold(withheldDecline, salted)
		case e.Type == pb.LogConfirmationAsked:
			return withhold(withheldConfirmation, salted)
		}
		v.commitment = "" // the merchant is given no opening
		return v
	}
	return withhold(withheldRole, false)
}
