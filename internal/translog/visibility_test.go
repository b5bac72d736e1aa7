package translog

import (
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestViewEntry is docs/visibility.md's table, cell by cell, for entries
// logged now and entries logged before risk was committed by hash (which
// TestWhatEachPartySees, through the real server, cannot make). The
// entries' data are written as the payments core logs them (its types in
// internal/service/events.go), by their JSON names.
func TestViewEntry(t *testing.T) {
	at := time.Date(2026, 8, 1, 7, 30, 0, 0, time.UTC)
	entry := func(typ string, data any) []byte {
		b, err := pb.EncodeLogEntry(pb.LogEvent{Type: typ, Subject: "pay_1", Actor: pb.Actor{Role: pb.RoleAgent, ID: "agt_1"}, Data: data}, at, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	salt := "5a1f00d5a1f00d5a1f00d5a1f00d5a1f" // as the core's newSalt makes one: 16 random bytes in hex
	request := &pb.RequestEvidence{KeyID: "k", Signature: "sig1=:…:", SignatureBase: "…", SignatureInput: "sig1=()"}
	oldRisk := map[string]any{"decision": "block", "input_sha256": "ab", "score": 85, "signals": []any{map[string]any{"name": "bearer_agent", "points": 10}}}

	// Each party's view: "" shown, "+" shown with the risk commitment opened
	// (in part for the agent), or the reason it is withheld, with "^" when
	// its leaf hash is given.
	type views struct{ payer, operator, agent, merchant string }
	for _, c := range []struct {
		name string
		body []byte
		want views
	}{
		{"payment.created", entry(pb.LogPaymentCreated, map[string]any{"amount": 1, "risk_sha256": "c0ffee"}),
			views{"+", "+", "+", ""}},
		{"payment.created, not assessed", entry(pb.LogPaymentCreated, map[string]any{"amount": 1}),
			views{"", "", "", ""}},
		{"payment.created with a signed request", entry(pb.LogPaymentCreated, map[string]any{"amount": 1, "request": request, "risk_sha256": "c0ffee", "salt": salt}),
			views{"+", "+", "+", "^" + withheldRequest}},
		{"payment.declined by risk control", entry(pb.LogPaymentDeclined, map[string]any{"decline_code": pb.DeclineRiskBlocked, "message": "…", "salt": salt}),
			views{"", "", "", "^" + withheldDecline}},
		{"payment.declined by the mandate", entry(pb.LogPaymentDeclined, map[string]any{"decline_code": pb.DeclineMandateAmountExceeded, "message": "…", "salt": salt}),
			views{"", "", "", "^" + withheldDecline}},
		{"confirmation.asked", entry(pb.LogConfirmationAsked, map[string]any{"confirmation_id": "cfm_1", "reason": pb.ConfirmRiskReview, "salt": salt}),
			views{"", "", "", "^" + withheldConfirmation}},
		{"confirmation.approved", entry(pb.LogConfirmationApproved, map[string]any{"confirmation_id": "cfm_1", "factor": "totp"}), views{}},
		{"confirmation.denied", entry(pb.LogConfirmationDenied, map[string]any{"confirmation_id": "cfm_1", "factor": ""}), views{}},
		{"payment.authorized", entry(pb.LogPaymentAuthorized, map[string]any{"amount": 1, "basis": pb.BasisConfirmation}), views{}},
		{"payment.captured", entry(pb.LogPaymentCaptured, map[string]any{"amount": 1, "fee": 0, "released": 0}), views{}},
		{"payment.canceled", entry(pb.LogPaymentCanceled, map[string]any{"released": 1}), views{}},
		{"payment.expired", entry(pb.LogPaymentExpired, map[string]any{"released": 1, "what": "hold"}), views{}},
		{"payment.refunded", entry(pb.LogPaymentRefunded, map[string]any{"amount": 1, "fee_returned": 0, "refund_id": "re_1"}), views{}},
		{"dispute.opened", entry(pb.LogDisputeOpened, map[string]any{"amount": 1, "dispute_id": "dsp_1", "check": "risk_review"}), views{}},
		{"dispute.resolved", entry(pb.LogDisputeResolved, map[string]any{"amount": 1, "dispute_id": "dsp_1", "outcome": pb.OutcomeReject}), views{}},
		{"compensation.paid", entry(pb.LogCompensationPaid, map[string]any{"amount": 1, "dispute_id": "dsp_1"}), views{}},

		// Logged before: the risk in clear, and no salt to hide an entry
		// from a guess of it, so no leaf hash is given.
		{"old payment.created", entry(pb.LogPaymentCreated, map[string]any{"amount": 1, "risk": oldRisk}),
			views{"", "", withheldRisk, withheldRisk}},
		{"old payment.created with a signed request", entry(pb.LogPaymentCreated, map[string]any{"amount": 1, "risk": oldRisk, "request": request}),
			views{"", "", withheldRisk, withheldRisk}},
		{"old payment.created, signed, not assessed", entry(pb.LogPaymentCreated, map[string]any{"amount": 1, "request": request}),
			views{"", "", "", withheldRequest}},
		{"old payment.declined by risk control", entry(pb.LogPaymentDeclined, map[string]any{"decline_code": "risk_blocked",
			"message": "risk control blocked the payment (score 85 of 100; signals bearer_agent)"}),
			views{"", "", withheldRisk, withheldDecline}},
		{"old payment.declined by the wallet", entry(pb.LogPaymentDeclined, map[string]any{"decline_code": "insufficient_funds", "message": "…"}),
			views{"", "", "", withheldDecline}},
		{"old confirmation.asked", entry(pb.LogConfirmationAsked, map[string]any{"confirmation_id": "cfm_1", "reason": "risk_review"}),
			views{"", "", "", withheldConfirmation}},
	} {
		for _, p := range []struct {
			role pb.Role
			want string
		}{{pb.RoleUser, c.want.payer}, {pb.RoleOperator, c.want.operator}, {pb.RoleAgent, c.want.agent}, {pb.RoleMerchant, c.want.merchant}} {
			t.Run(string(p.role)+"/"+c.name, func(t *testing.T) {
				v := viewEntry(pb.Principal{Role: p.role, ID: "x"}, c.body)
				got := v.withheld
				switch {
				case v.withheld != "" && v.leaf:
					got = "^" + got
				case v.withheld == "" && v.commitment != "":
					got = "+"
				}
				if got != p.want {
					t.Fatalf("%s's view of %s: %q, want %q (%+v)", p.role, c.body, got, p.want, v)
				}
				if got == "+" && v.partial != (p.role == pb.RoleAgent) {
					t.Fatalf("partial opening %v for the %s", v.partial, p.role)
				}
			})
		}
	}
	// An entry that does not decode, and a caller that is no party's role,
	// are withheld, with nothing given.
	for _, v := range []entryView{viewEntry(pb.Principal{Role: pb.RoleUser}, []byte("{")),
		viewEntry(pb.Principal{Role: "stranger"}, entry(pb.LogPaymentCaptured, map[string]any{"amount": 0, "fee": 0, "released": 0}))} {
		if v.withheld == "" || v.leaf {
			t.Errorf("view %+v; want withheld without a leaf hash", v)
		}
	}
}
