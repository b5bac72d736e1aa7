package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

// What each party to a payment may read of its log entries, as
// docs/visibility.md tables it: shown (the entry's bytes and its proof),
// withheld with its leaf hash and proof, or withheld with nothing to check.
type cell string

const (
	shown        cell = "shown"
	withheldLeaf cell = "withheld with its leaf hash"
)

// visibilityTable is docs/visibility.md's table for the entries of a
// payment logged now (an entry kind not listed is shown). The payer and the
// operator read every entry.
var visibilityTable = map[string]map[string]cell{
	"agent": {},
	"merchant": {
		pb.LogPaymentCreated + " (signed request)": withheldLeaf,
		pb.LogPaymentDeclined:                      withheldLeaf,
		pb.LogConfirmationAsked:                    withheldLeaf,
	},
}

// leaks are what a party may not read anywhere: in a trace, a receipt, a
// payment, an error. (The merchant does read the check "risk_review" of a
// dispute's proposal, in the dispute and its dispute.opened entry: see
// docs/visibility.md.)
var leaks = map[string][]string{
	"merchant": {`"score"`, `"decision"`, `"signals"`, `"points"`, "input_sha256", "risk_blocked", "confirm_above",
		"new_payee_large_amount", "bearer_agent", "untrusted", "secret-rule-name", "currency_mismatch", "provenance",
		`"request"`, `\"request\"`, `"detail`},
	"agent": {`"score"`, `"points"`, `"rule"`, "input_sha256", "secret-rule-name", `"detail":`, "score "},
}

// visParty is one party to the payments of a visibility world.
type visParty struct{ name, key string }

// TestWhatEachPartySees makes payments whose entries cover every kind a
// payment logs, then reads each payment's trace, receipt, entries and
// object as each party to it, cell by cell of docs/visibility.md.
func TestWhatEachPartySees(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)
	vkey := strings.TrimSpace(string(w.ok(200, w.call("GET", "/v1/log/key", "", "", nil)).raw))
	store := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Laptop Store", "category": "electronics"}))
	shop, shopKey := store.str("id"), store.str("api_key")
	sg, jwk := newSigner(t)
	signer := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Signer", "public_key": json.RawMessage(jwk)}))
	w.clock.Advance(48 * time.Hour)
	mandate := w.mandate("a new laptop, up to 8,000 yuan", 800_000)
	w.ok(200, w.call("POST", "/v1/risk/rules", w.op, "-", map[string]any{"name": "secret-rule-name",
		"expression": `payment.description.contains("voucher")`, "action": "block", "priority": 1}))

	// reviewed: risk control asks the payer, who approves; the merchant
	// refunds part, the payer disputes, and the platform compensates.
	r := w.ok(201, w.pay(mandate, shop, 650_000, nil))
	if r.str("status") != "requires_confirmation" {
		t.Fatalf("a large first purchase: %s", r.raw)
	}
	reviewed := r.str("id")
	w.approve(r)
	w.ok(201, w.call("POST", "/v1/payments/"+reviewed+"/refunds", shopKey, "", map[string]any{"amount": 1000}))
	d := w.ok(201, w.call("POST", "/v1/payments/"+reviewed+"/disputes", w.userKey, "", map[string]any{"reason": "not_as_intended"}))
	w.ok(200, w.call("POST", "/v1/disputes/"+d.str("id")+"/resolve", w.op, "", map[string]any{"outcome": "refund_partial",
		"amount": 2000, "liable_party": "platform"}))

	// blocked by the operator's rule; the agent is told that a rule
	// blocked it, not which, nor the score.
	r = w.pay(mandate, shop, 1000, map[string]any{"description": "a voucher", "provenance": map[string]any{"payee": "untrusted"}})
	if r.status != 402 || r.errField("code") != "risk_blocked" {
		t.Fatalf("the voucher: %d %s", r.status, r.raw)
	}
	noLeak(t, "agent", "the 402 of a blocked payment", r.raw)
	blocked := r.errField("payment_id")

	// signed: the agent's signed request is in payment.created; the
	// merchant cancels the hold.
	body := []byte(`{"amount":1200,"currency":"CNY","merchant_id":"` + shop + `","mandate_id":"` + w.grantTo(signer.str("id")) +
		`","capture_method":"manual","provenance":{"payee":"untrusted"}}`)
	sr := send(t, sg.signed(t, "POST", w.base+"/v1/payments", body, "vis-signed", w.clock.Now(), nil))
	if sr.status != 201 || sr.str("status") != "authorized" {
		t.Fatalf("the signed payment: %d %s", sr.status, sr.raw)
	}
	signed := sr.str("id")
	w.ok(200, w.call("POST", "/v1/payments/"+signed+"/cancel", shopKey, "", nil))

	// declined: the payer's own payment in a currency the wallet lacks.
	r = w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 100, "currency": "EUR", "merchant_id": shop})
	if r.status != 402 || r.errField("code") != "currency_mismatch" {
		t.Fatalf("the EUR payment: %d %s", r.status, r.raw)
	}
	declined := r.errField("payment_id")

	// denied: no mandate covers it; the payer denies it.
	r = w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 900, "currency": "CNY", "merchant_id": shop}))
	denied := r.str("id")
	w.ok(200, w.call("POST", "/v1/confirmations/"+r.body["confirmation"].(map[string]any)["id"].(string)+"/deny", w.userKey, "", nil))

	agents := map[string]string{reviewed: w.agentKey, blocked: w.agentKey, signed: signer.str("api_key"), denied: w.agentKey}
	seen := map[string]bool{}
	for _, pay := range []string{reviewed, blocked, signed, declined, denied} {
		parties := []visParty{{"payer", w.userKey}, {"operator", w.op}, {"merchant", shopKey}}
		if agents[pay] != "" {
			parties = append(parties, visParty{"agent", agents[pay]})
		}
		for _, party := range parties {
			for _, kind := range w.checkParty(t, party, pay, vkey) {
				seen[party.name+" "+kind] = true
			}
		}
	}
	// Every kind of entry a payment logs was read by every party.
	for _, party := range []string{"payer", "operator", "merchant", "agent"} {
		for _, kind := range []string{pb.LogPaymentCreated, pb.LogPaymentCreated + " (signed request)", pb.LogPaymentDeclined,
			pb.LogConfirmationAsked, pb.LogConfirmationApproved, pb.LogConfirmationDenied, pb.LogPaymentAuthorized,
			pb.LogPaymentCaptured, pb.LogPaymentCanceled, pb.LogPaymentRefunded, pb.LogDisputeOpened, pb.LogDisputeResolved,
			pb.LogCompensationPaid} {
			if !seen[party+" "+kind] {
				t.Errorf("no %s entry was read as the %s", kind, party)
			}
		}
	}

	// The payment object: the merchant sees that a payment was declined,
	// not why; the agent sees the decision and the signals' names.
	for _, id := range []string{blocked, declined} {
		p := w.ok(200, w.call("GET", "/v1/payments/"+id, shopKey, "", nil))
		if p.str("decline_code") != string(pb.DeclineGeneric) {
			t.Errorf("the merchant reads decline_code %q of %s: %s", p.str("decline_code"), id, p.raw)
		}
		noLeak(t, "merchant", "payment "+id, p.raw)
	}
	noLeak(t, "merchant", "the merchant's payments", w.ok(200, w.call("GET", "/v1/payments", shopKey, "", nil)).raw)
	p := w.ok(200, w.call("GET", "/v1/payments/"+blocked, w.agentKey, "", nil))
	if rk := riskOf(t, p); rk.Decision != pb.RiskBlock || len(rk.Signals) == 0 || rk.Signals[0].Name == "" {
		t.Errorf("the agent's view of the blocked payment: %s", p.raw)
	}
	noLeak(t, "agent", "the agent's view of the blocked payment", p.raw)
	// The CLI does not take the score an agent is not shown for 0.
	if out, errOut, err := w.cli(w.agentKey, "risk", "explain", blocked); err != nil || strings.Contains(out, "/100") ||
		!strings.Contains(out, "not to an agent") || !strings.Contains(out, "untrusted_payee") {
		t.Errorf("risk explain as the agent: %v %s\n%s", err, errOut, out)
	}
	noLeak(t, "agent", "the agent's payments", w.ok(200, w.call("GET", "/v1/payments", w.agentKey, "", nil)).raw)
	if p := w.ok(200, w.call("GET", "/v1/payments/"+blocked, w.userKey, "", nil)); riskOf(t, p).Rule != "secret-rule-name" ||
		p.str("decline_code") != "risk_blocked" {
		t.Errorf("the payer's view of the blocked payment: %s", p.raw)
	}
}

// grantTo grants agent a mandate like the world's own.
func (w *riskWorld) grantTo(agent string) string {
	w.t.Helper()
	return w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": agent, "description": "anything",
		"currency": "CNY", "max_amount": 800_000, "budget": map[string]any{"amount": 1_000_000_000, "period": "month"}})).str("id")
}

func noLeak(t *testing.T, party, what string, raw []byte) {
	t.Helper()
	for _, l := range leaks[party] {
		if i := strings.Index(string(raw), l); i >= 0 {
			t.Errorf("the %s reads %s in %s: …%s…", party, l, what, raw[max(0, i-200):min(len(raw), i+200)])
		}
	}
}

// checkParty reads payment pay's trace, receipt and entries as party, and
// checks each entry against the table; it returns the kinds of entry read.
func (w *riskWorld) checkParty(t *testing.T, party visParty, pay, vkey string) []string {
	t.Helper()
	tr := w.ok(200, w.call("GET", "/v1/payments/"+pay+"/trace", party.key, "", nil))
	noLeak(t, party.name, "the trace of "+pay, tr.raw)
	var trace client.Trace
	if err := json.Unmarshal(tr.raw, &trace); err != nil {
		t.Fatal(err)
	}
	rc := w.ok(200, w.call("GET", "/v1/payments/"+pay+"/receipt", party.key, "", nil))
	noLeak(t, party.name, "the receipt of "+pay, rc.raw)
	var receipt client.Receipt
	if err := json.Unmarshal(rc.raw, &receipt); err != nil {
		t.Fatal(err)
	}
	verified, err := client.VerifyReceipt(&receipt, vkey)
	if err != nil {
		t.Fatalf("the %s's receipt of %s: %v\n%s", party.name, pay, err, rc.raw)
	}
	for _, e := range verified.Entries {
		noLeak(t, party.name, "the receipt's entry "+itoa(e.Index), e.Body)
	}
	if len(verified.Entries) != len(trace.Entries) {
		t.Fatalf("the %s's receipt of %s has %d entries, its trace %d", party.name, pay, len(verified.Entries), len(trace.Entries))
	}
	var kinds []string
	for i, e := range trace.Entries {
		kind, data := e.Type, json.RawMessage(nil)
		if !e.Redacted {
			var ent logEntry
			if err := json.Unmarshal([]byte(e.Entry), &ent); err != nil {
				t.Fatal(err)
			}
			kind, data = ent.Type, ent.Data
		}
		if kind == pb.LogPaymentCreated && (strings.Contains(string(data), `"request"`) || e.Reason == "agent_request") {
			kind += " (signed request)"
		}
		kinds = append(kinds, kind)
		t.Run(party.name+"/"+kind, func(t *testing.T) {
			want := shown
			if c, ok := visibilityTable[party.name][kind]; ok {
				want = c
			}
			got := shown
			if e.Redacted {
				got = withheldLeaf
				if e.LeafHash == "" || len(e.InclusionProof) == 0 || e.Reason == "" {
					t.Fatalf("withheld without its leaf hash, proof or reason: %+v", e)
				}
			}
			if got != want {
				t.Fatalf("entry %d of %s is %s; want %s: %+v", e.Index, pay, got, want, e)
			}
			if v := verified.Entries[i]; v.Index != e.Index || (v.Withheld != "") != e.Redacted || v.Unchained {
				t.Fatalf("the receipt's entry %d: %+v", i, v)
			}
			entry := w.call("GET", "/v1/log/entries/"+itoa(e.Index), party.key, "", nil)
			switch {
			case got == shown && (entry.status != 200 || string(entry.raw) != e.Entry):
				t.Fatalf("GET /v1/log/entries/%d: %d %s", e.Index, entry.status, entry.raw)
			case got != shown && (entry.status != 403 || entry.errField("type") != "permission_error"):
				t.Fatalf("GET /v1/log/entries/%d of a withheld entry: %d %s", e.Index, entry.status, entry.raw)
			}
			if kind != pb.LogPaymentCreated && kind != pb.LogPaymentCreated+" (signed request)" || got != shown {
				if e.Risk != nil {
					t.Fatalf("a risk opening on entry %d: %+v", e.Index, e.Risk)
				}
				return
			}
			// A payment.created entry the party reads: its risk opening.
			var created struct {
				RiskSHA256 string `json:"risk_sha256"`
				Risk       any    `json:"risk"`
			}
			json.Unmarshal(data, &created)
			if created.RiskSHA256 == "" || created.Risk != nil {
				t.Fatalf("payment.created does not commit to its risk: %s", data)
			}
			switch {
			case party.name == "merchant":
				if e.Risk != nil || receipt.Risk != nil {
					t.Fatalf("the merchant is given a risk opening: %+v", e.Risk)
				}
				return
			case e.Risk == nil || e.Risk.Verify(created.RiskSHA256) != nil || verified.Risk == nil:
				t.Fatalf("no risk opening that verifies: %+v (receipt %+v)", e.Risk, verified.Risk)
			case party.name == "agent" && e.Risk.Detail != nil:
				t.Fatalf("the agent is given the detail: %+v", e.Risk.Detail)
			case party.name != "agent" && e.Risk.Detail == nil:
				t.Fatalf("the %s is not given the detail", party.name)
			}
			// A changed opening does not verify.
			forged := *e.Risk
			forged.Decision = pb.RiskAllow
			if e.Risk.Decision == pb.RiskAllow {
				forged.Decision = pb.RiskBlock
			}
			if err := forged.Verify(created.RiskSHA256); !errors.Is(err, pb.ErrRiskOpening) {
				t.Fatalf("a forged opening: %v", err)
			}
		})
	}
	return kinds
}
