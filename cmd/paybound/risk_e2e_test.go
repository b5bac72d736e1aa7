package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/internal/stepup"
)

// riskWorld is a server on a test clock with one user (ample CNY), her
// agent, and merchants that have existed for two days (so that "new
// merchant" fires only for the ones a scenario creates).
type riskWorld struct {
	*world
	clock *testClock
	dir   string
	cafe  string
}

func newRiskWorld(t *testing.T) *riskWorld {
	clock := &testClock{now: time.Date(2026, 8, 1, 7, 30, 0, 0, time.UTC)}
	dir := t.TempDir()
	m := startMain(t, dir, func(m *Main) { m.Clock = clock })
	w := &riskWorld{world: &world{api: &api{t: t, base: m.URL()}, m: m, op: m.OperatorKey}, clock: clock, dir: dir}
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Mei"}))
	w.user, w.userKey = u.str("id"), u.str("api_key")
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Helper"}))
	w.agent, w.agentKey = ag.str("id"), ag.str("api_key")
	w.ok(201, w.call("POST", "/v1/topups", w.userKey, "", map[string]any{"amount": 12_000_000, "currency": "CNY"}))
	w.cafe = w.merchant("Morning Cafe", "food_and_drink")
	clock.Advance(48 * time.Hour)
	return w
}

func (w *riskWorld) merchant(name, category string) string {
	w.t.Helper()
	return w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": name, "category": category})).str("id")
}

// mandate grants the agent a mandate in CNY with a per-payment maximum and
// a large budget: technically, it allows a lot.
func (w *riskWorld) mandate(description string, max int64) string {
	w.t.Helper()
	return w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": w.agent, "description": description,
		"currency": "CNY", "max_amount": max, "budget": map[string]any{"amount": 1_000_000_000, "period": "month"}})).str("id")
}

// pay is the agent paying under mandate.
func (w *riskWorld) pay(mandate, merchant string, amount int64, extra map[string]any) resp {
	w.t.Helper()
	body := map[string]any{"amount": amount, "currency": "CNY", "merchant_id": merchant, "mandate_id": mandate}
	for k, v := range extra {
		body[k] = v
	}
	return w.call("POST", "/v1/payments", w.agentKey, "", body)
}

// approve enrols the user's one-time-code factor and approves the
// confirmation of payment r with it.
func (w *riskWorld) approve(r resp) resp {
	w.t.Helper()
	e := w.ok(201, w.call("POST", "/v1/totp", w.userKey, "", nil))
	secret, _ := stepup.DecodeTOTPSecret(e.str("secret"))
	w.ok(200, w.call("POST", "/v1/totp/verify", w.userKey, "", map[string]any{"code": stepup.TOTPCode(secret, w.clock.Now())}))
	w.clock.Advance(stepup.TOTPStep)
	cfm := r.body["confirmation"].(map[string]any)["id"].(string)
	return w.ok(200, w.call("POST", "/v1/confirmations/"+cfm+"/approve", w.userKey, "", map[string]any{"totp": stepup.TOTPCode(secret, w.clock.Now())}))
}

// asUser is payment r as its payer reads it: the agent that made it does
// not read the rule or the score.
func (w *riskWorld) asUser(r resp) resp {
	w.t.Helper()
	return w.ok(200, w.call("GET", "/v1/payments/"+r.str("id"), w.userKey, "", nil))
}

// riskOf returns a payment's risk as the API shows it.
func riskOf(t *testing.T, r resp) pb.Risk {
	t.Helper()
	var p struct {
		Risk *pb.Risk `json:"risk"`
	}
	if err := json.Unmarshal(r.raw, &p); err != nil || p.Risk == nil {
		t.Fatalf("no risk on the payment: %s", r.raw)
	}
	return *p.Risk
}

func signalNames(r pb.Risk) []string {
	var out []string
	for _, s := range r.Signals {
		out = append(out, s.Name)
	}
	return out
}

// wantSignals fails unless every name in want fired.
func wantSignals(t *testing.T, what string, r pb.Risk, want ...string) {
	t.Helper()
	for _, n := range want {
		if !slices.Contains(signalNames(r), n) {
			t.Fatalf("%s: signal %s did not fire: %+v", what, n, r)
		}
	}
}

// tracedRisk returns the risk a payment's payment.created log entry
// commits to, as the payer's trace opens it (signals without their
// reasons, which are never logged), and the types of its entries.
func (w *riskWorld) tracedRisk(t *testing.T, id string) (pb.Risk, []string) {
	t.Helper()
	tr := w.ok(200, w.call("GET", "/v1/payments/"+id+"/trace", w.userKey, "", nil))
	var trace client.Trace
	if err := json.Unmarshal(tr.raw, &trace); err != nil {
		t.Fatal(err)
	}
	var types []string
	var opened *pb.RiskOpening
	for _, e := range trace.Entries {
		var ent logEntry
		if err := json.Unmarshal([]byte(e.Entry), &ent); err != nil {
			t.Fatal(err)
		}
		types = append(types, ent.Type)
		if ent.Type != pb.LogPaymentCreated {
			continue
		}
		var created struct {
			RiskSHA256 string `json:"risk_sha256"`
		}
		json.Unmarshal(ent.Data, &created)
		if e.Risk == nil || e.Risk.Detail == nil || e.Risk.Verify(created.RiskSHA256) != nil {
			t.Fatalf("the trace of %s does not open the logged risk: %s", id, tr.raw)
		}
		opened = e.Risk
	}
	if opened == nil {
		t.Fatalf("the trace of %s has no payment.created entry: %s", id, tr.raw)
	}
	r := pb.Risk{Decision: opened.Decision, Rule: opened.Detail.Rule, Score: opened.Detail.Score}
	for _, sg := range opened.Detail.Signals {
		r.Signals = append(r.Signals, pb.RiskSignal{Name: sg.Name, Points: sg.Points})
	}
	return r, types
}

// TestRiskScenarios: the scenarios through the real server, each
// with the decision a person would want and a trace that explains it.
func TestRiskScenarios(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)

	// Months of small breakfasts at one cafe, one each morning.
	breakfast := w.mandate("breakfast at the cafe on the way to work", 5000)
	for day := range 90 {
		r := w.ok(201, w.pay(breakfast, w.cafe, 1500+int64(day%7)*100, nil))
		if r.str("status") != "captured" || riskOf(t, r).Decision != pb.RiskAllow {
			t.Fatalf("breakfast %d: %s", day, r.raw)
		}
		w.clock.Advance(24 * time.Hour)
	}
	r := w.ok(201, w.pay(breakfast, w.cafe, 1800, nil))
	if rk := riskOf(t, r); r.str("status") != "captured" || rk.Decision != pb.RiskAllow || len(rk.Signals) != 1 || rk.Signals[0].Name != "bearer_agent" {
		t.Fatalf("the usual breakfast: %s", r.raw)
	}

	// A tipping mandate of a few yuan, carelessly without a real limit; its
	// agent reads a post and pays 100,000 yuan to a payee never seen.
	tips := w.mandate("tips for creators I like, a few yuan", 20_000_000)
	creator := w.merchant("Creator", "tips")
	for i := range 8 {
		w.ok(201, w.pay(tips, creator, 200+int64(i%3)*100, nil))
		w.clock.Advance(6 * time.Hour)
	}
	stranger := w.merchant("Support Desk", "tips") // created minutes ago
	w.clock.Advance(10 * time.Minute)
	r = w.pay(tips, stranger, 10_000_000, map[string]any{"provenance": map[string]any{"payee": "untrusted", "amount": "untrusted"}})
	if r.status != 402 || r.errField("code") != "risk_blocked" || !strings.Contains(r.errField("message"), "new_payee_large_amount") {
		t.Fatalf("the tricked tip: %d %s", r.status, r.raw)
	}
	scam := w.ok(200, w.call("GET", "/v1/payments/"+r.errField("payment_id"), w.userKey, "", nil))
	rk := riskOf(t, scam)
	if scam.str("status") != "declined" || scam.str("decline_code") != "risk_blocked" || rk.Decision != pb.RiskBlock || rk.Score < 80 {
		t.Fatalf("the tricked tip as recorded: %s", scam.raw)
	}
	wantSignals(t, "the tricked tip", rk, "amount_vs_mandate_history", "amount_vs_category_history", "new_payee_large_amount",
		"drains_wallet", "new_merchant", "untrusted_payee", "untrusted_amount")
	traced, types := w.tracedRisk(t, scam.str("id"))
	if !slices.Equal(signalNames(traced), signalNames(rk)) || traced.Score != rk.Score || traced.Decision != pb.RiskBlock ||
		!slices.Equal(types, []string{pb.LogPaymentCreated, pb.LogPaymentDeclined}) {
		t.Fatalf("the tricked tip's trace: %v %+v", types, traced)
	}
	// The operator's trace opens the signals without their reasons (the
	// payer's balance and history), which are never logged.
	stranger2 := w.ok(200, w.call("GET", "/v1/payments/"+scam.str("id")+"/trace", w.op, "", nil))
	if strings.Contains(string(stranger2.raw), "available") || !strings.Contains(string(stranger2.raw), "input_sha256") {
		t.Fatalf("the trace's risk: %s", stranger2.raw)
	}
	if av, _ := w.balance(w.userKey, "CNY"); av < 11_000_000 {
		t.Fatalf("the blocked payment moved money: available %d", av)
	}

	// A card-testing burst: tiny payments to one new merchant after
	// another, within a minute.
	w.clock.Advance(2 * time.Hour)
	anything := w.mandate("small things online", 100_000)
	var decisions []pb.RiskDecision
	for i := range 14 {
		m := w.merchant(fmt.Sprintf("Shop %d", i), "digital_goods")
		r := w.pay(anything, m, 100, nil)
		if r.status == 402 {
			r = w.ok(200, w.call("GET", "/v1/payments/"+r.errField("payment_id"), w.userKey, "", nil))
		}
		decisions = append(decisions, riskOf(t, r).Decision)
		w.clock.Advance(3 * time.Second)
	}
	if !slices.Equal(decisions[:10], slices.Repeat([]pb.RiskDecision{pb.RiskAllow}, 10)) ||
		!slices.Equal(decisions[10:], slices.Repeat([]pb.RiskDecision{pb.RiskBlock}, 4)) {
		t.Fatalf("card testing: decisions %v; want 10 allowed, then blocked", decisions)
	}
}

// TestRiskAgentLoopSurvivesRestart: an agent stuck in a loop pays the same
// merchant every second; risk control stops it, and a restart does not
// reset the counters that did.
func TestRiskAgentLoopSurvivesRestart(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)
	lunch := w.mandate("lunch", 5000)
	for i := range 10 {
		r := w.ok(201, w.pay(lunch, w.cafe, 1800, nil))
		if riskOf(t, r).Decision != pb.RiskAllow {
			t.Fatalf("payment %d of the loop: %s", i, r.raw)
		}
		w.clock.Advance(time.Second)
	}
	// Restart on the same data.
	w.m.Close()
	m := startMain(t, w.dir, func(m *Main) { m.Clock = w.clock })
	w.m, w.base = m, m.URL()
	r := w.pay(lunch, w.cafe, 1800, nil)
	if r.status != 402 || r.errField("code") != "risk_blocked" {
		t.Fatalf("the 11th payment in a minute, after a restart: %d %s", r.status, r.raw)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+r.errField("payment_id"), w.userKey, "", nil))
	wantSignals(t, "the loop", riskOf(t, p), "velocity_agent", "velocity_mandate", "velocity_payee")
	// A minute later the agent may pay again.
	w.clock.Advance(time.Minute)
	if r := w.ok(201, w.pay(lunch, w.cafe, 1800, nil)); riskOf(t, r).Decision != pb.RiskAllow {
		t.Fatalf("after the minute: %s", r.raw)
	}
}

// TestRiskReviewApproved: a legitimate large first purchase is reviewed,
// even inside its mandate; the user approves it and it goes through, and
// the trace shows why she was asked.
func TestRiskReviewApproved(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)
	shopping := w.mandate("a new laptop, up to 8,000 yuan", 800_000)
	store := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Laptop Store", "category": "electronics"}))
	shop, shopKey := store.str("id"), store.str("api_key")
	w.clock.Advance(48 * time.Hour)
	r := w.ok(201, w.pay(shopping, shop, 650_000, nil))
	rk := riskOf(t, r)
	if r.str("status") != "requires_confirmation" || rk.Decision != pb.RiskReview {
		t.Fatalf("large first purchase: %s", r.raw)
	}
	wantSignals(t, "large first purchase", rk, "new_payee_large_amount")
	if a := w.approve(r); a.str("status") != "captured" {
		t.Fatalf("approved: %s", a.raw)
	}
	// The merchant sees nothing of the payer's risk assessment, in the
	// payment or in its trace (docs/visibility.md has the whole table);
	// the agent sees the signals without their reasons; the user sees the
	// reasons.
	for _, path := range []string{"/v1/payments/" + r.str("id"), "/v1/payments", "/v1/payments/" + r.str("id") + "/trace"} {
		m := w.ok(200, w.call("GET", path, shopKey, "", nil))
		for _, leak := range []string{`"risk"`, "new_payee_large_amount", "risk_review", "first payment to this payee"} {
			if strings.Contains(string(m.raw), leak) {
				t.Fatalf("the merchant reads %s at %s: %s", leak, path, m.raw)
			}
		}
	}
	for key, want := range map[string]bool{w.agentKey: false, w.userKey: true} {
		g := w.ok(200, w.call("GET", "/v1/payments/"+r.str("id"), key, "", nil))
		if rk := riskOf(t, g); (rk.Signals[0].Reason != "") != want || rk.Signals[0].Name == "" {
			t.Fatalf("reasons shown = %v, want %v: %s", rk.Signals[0].Reason != "", want, g.raw)
		}
	}
	_, types := w.tracedRisk(t, r.str("id"))
	want := []string{pb.LogPaymentCreated, pb.LogConfirmationAsked, pb.LogConfirmationApproved, pb.LogPaymentAuthorized, pb.LogPaymentCaptured}
	if !slices.Equal(types, want) {
		t.Fatalf("trace: %v, want %v", types, want)
	}
	tr := w.ok(200, w.call("GET", "/v1/payments/"+r.str("id")+"/trace", w.userKey, "", nil))
	if !strings.Contains(string(tr.raw), `\"reason\":\"risk_review\"`) {
		t.Fatalf("the trace does not say risk control asked: %s", tr.raw)
	}
	// The user's own large payment is asked too, never blocked by the score.
	own := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 900_000, "currency": "CNY",
		"merchant_id": w.merchant("Car Dealer", "vehicles")}))
	if own.str("status") != "requires_confirmation" || riskOf(t, own).Decision != pb.RiskReview {
		t.Fatalf("the user's own large payment: %s", own.raw)
	}
}

// TestRiskRulesAndFlags: the operator's rules and flags over HTTP, their
// order, their effect, and bad input that changes nothing.
func TestRiskRulesAndFlags(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)
	anything := w.mandate("anything", 1_000_000)
	casino := w.merchant("Lucky", "casino")
	rule := func(name, expr, action string, prio int) resp {
		return w.call("POST", "/v1/risk/rules", w.op, "-", map[string]any{"name": name, "expression": expr, "action": action, "priority": prio})
	}
	w.ok(200, rule("no casinos", `merchant.category == "casino"`, "block", 10))
	w.ok(200, rule("trusted cafe", `payment.merchant_id == "`+w.cafe+`" && payment.amount < 5000`, "allow", 20))
	w.ok(200, rule("gift cards", `payment.description.contains("gift card")`, "review", 5))

	r := w.pay(anything, casino, 1000, nil)
	// The agent is told that a rule decided, not which: its name may say
	// what the rule looks for. The payer reads it on the payment.
	if r.status != 402 || r.errField("code") != "risk_blocked" || !strings.Contains(r.errField("message"), "operator's rules") ||
		strings.Contains(r.errField("message"), "casinos") {
		t.Fatalf("casino: %d %s", r.status, r.raw)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+r.errField("payment_id"), w.userKey, "", nil))
	if rk := riskOf(t, p); rk.Rule != "no casinos" || rk.Decision != pb.RiskBlock {
		t.Fatalf("casino risk: %s", p.raw)
	}
	// Priority 5 runs before the allow rule of priority 20, and raises the
	// score's allow to a review.
	r = w.asUser(w.ok(201, w.pay(anything, w.cafe, 1000, map[string]any{"description": "a gift card, please"})))
	if rk := riskOf(t, r); rk.Rule != "gift cards" || rk.Score >= 40 || r.str("status") != "requires_confirmation" {
		t.Fatalf("a gift card at the cafe: %s", r.raw)
	}
	// A flagged merchant carries the signal; the allow rule still decides.
	w.ok(200, w.call("POST", "/v1/merchants/"+w.cafe+"/risk_flags", w.op, "-", map[string]any{"flags": []string{"suspected_fraud", "chargebacks"}}))
	r = w.asUser(w.ok(201, w.pay(anything, w.cafe, 1000, nil)))
	if rk := riskOf(t, r); rk.Rule != "trusted cafe" || rk.Decision != pb.RiskAllow || !slices.Contains(signalNames(rk), "merchant_flagged") {
		t.Fatalf("flagged cafe under an allow rule: %s", r.raw)
	}
	list := w.ok(200, w.call("GET", "/v1/risk/rules", w.op, "", nil))
	var rules struct{ Data []pb.RiskRule }
	json.Unmarshal(list.raw, &rules)
	var order []string
	for _, r := range rules.Data {
		order = append(order, r.Name)
	}
	if !slices.Equal(order, []string{"gift cards", "no casinos", "trusted cafe"}) {
		t.Fatalf("rules in run order: %v", order)
	}

	// Bad input: a clear error, and the rules stay as they were.
	for _, c := range []struct {
		key    string
		body   any
		status int
		code   string
		param  string
	}{
		{w.op, map[string]any{"name": "x", "expression": "payment.amount", "action": "block", "priority": 1}, 400, "parameter_invalid", "expression"},
		{w.op, map[string]any{"name": "x", "expression": "payment.amonut > 1", "action": "block", "priority": 1}, 400, "parameter_invalid", "expression"},
		{w.op, map[string]any{"name": "x", "expression": "true", "action": "deny", "priority": 1}, 400, "parameter_invalid", "action"},
		{w.op, map[string]any{"name": "x", "expression": "true", "action": "block", "priority": -1}, 400, "parameter_invalid", "priority"},
		{w.op, map[string]any{"name": "x", "expression": "true", "action": "block"}, 400, "parameter_missing", "priority"},
		{w.op, map[string]any{"expression": "true", "action": "block", "priority": 1}, 400, "parameter_missing", "name"},
		{w.op, map[string]any{"name": strings.Repeat("n", 101), "expression": "true", "action": "block", "priority": 1}, 400, "parameter_invalid", "name"},
		{w.op, map[string]any{"name": "x", "expression": "true", "action": "block", "priority": 1, "extra": 1}, 400, "unknown_field", "extra"},
		{w.userKey, map[string]any{"name": "x", "expression": "true", "action": "block", "priority": 1}, 403, "forbidden", ""},
		{w.agentKey, map[string]any{"name": "x", "expression": "true", "action": "block", "priority": 1}, 403, "forbidden", ""},
	} {
		r := w.call("POST", "/v1/risk/rules", c.key, "-", c.body)
		if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Fatalf("POST /v1/risk/rules %v: %d %s; want %d %s %s", c.body, r.status, r.raw, c.status, c.code, c.param)
		}
	}
	for _, c := range []struct {
		path   string
		key    string
		body   any
		status int
		code   string
	}{
		{"/v1/merchants/" + w.cafe + "/risk_flags", w.op, map[string]any{"flags": []string{"Bad Flag"}}, 400, "parameter_invalid"},
		{"/v1/merchants/" + w.cafe + "/risk_flags", w.op, map[string]any{"flags": slices.Repeat([]string{"a"}, 11)}, 400, "parameter_invalid"},
		{"/v1/merchants/" + w.cafe + "/risk_flags", w.op, map[string]any{}, 400, "parameter_missing"},
		{"/v1/merchants/mch_00000000000000000000000000/risk_flags", w.op, map[string]any{"flags": []string{"x"}}, 404, "resource_missing"},
		{"/v1/merchants/" + w.cafe + "/risk_flags", w.merchKey, map[string]any{"flags": []string{}}, 401, "unauthenticated"},
		{"/v1/payments", w.agentKey, map[string]any{"amount": 100, "currency": "CNY", "merchant_id": w.cafe, "mandate_id": anything, "provenance": map[string]any{"payee": "a post"}}, 400, "parameter_invalid"},
	} {
		r := w.call("POST", c.path, c.key, "", c.body)
		if r.status != c.status || r.errField("code") != c.code {
			t.Fatalf("POST %s %v: %d %s; want %d %s", c.path, c.body, r.status, r.raw, c.status, c.code)
		}
	}
	if again := w.ok(200, w.call("GET", "/v1/risk/rules", w.op, "", nil)); string(again.raw) != string(list.raw) {
		t.Fatalf("refused rules changed the list: %s", again.raw)
	}
	if r := w.call("DELETE", "/v1/risk/rules/nope", w.op, "", nil); r.status != 404 {
		t.Fatalf("delete a missing rule: %d %s", r.status, r.raw)
	}
	w.ok(200, w.call("DELETE", "/v1/risk/rules/no%20casinos", w.op, "", nil))
	w.ok(200, w.call("POST", "/v1/merchants/"+w.cafe+"/risk_flags", w.op, "-", map[string]any{"flags": []string{}}))
	if r := w.ok(201, w.pay(anything, casino, 1000, nil)); riskOf(t, r).Rule != "" || slices.Contains(signalNames(riskOf(t, r)), "merchant_flagged") {
		t.Fatalf("after the rule's deletion: %s", r.raw)
	}
}

// TestRiskExportReplay: the operator exports recorded attempts, labels
// them, and replays them offline against a rule before enabling it.
func TestRiskExportReplay(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)
	anything := w.mandate("anything", 1_000_000)
	gift := w.merchant("Gift Cards", "gift_cards")
	for i := range 3 {
		w.ok(201, w.pay(anything, w.cafe, 1500, nil))
		w.pay(anything, gift, 20_000+int64(i), map[string]any{"provenance": map[string]any{"payee": "untrusted"}})
		w.clock.Advance(time.Hour)
	}
	out, errOut, err := w.cli(w.op, "risk", "export", "--limit", "100")
	if err != nil {
		t.Fatalf("export: %v %s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("export wrote %d lines: %s", len(lines), out)
	}
	// Label: the gift cards were fraud, the cafe legit.
	var labeled []string
	for _, l := range lines {
		var a pb.RiskAttempt
		if err := json.Unmarshal([]byte(l), &a); err != nil || len(a.Input) == 0 || a.Risk == nil {
			t.Fatalf("exported line %q: %v", l, err)
		}
		// The exported input is the one the log vouches for.
		tr := w.ok(200, w.call("GET", "/v1/payments/"+a.PaymentID+"/trace", w.op, "", nil))
		if sum := sha256.Sum256(a.Input); !strings.Contains(string(tr.raw), hex.EncodeToString(sum[:])) {
			t.Fatalf("the exported input of %s does not hash to the logged input_sha256: %s\n%s", a.PaymentID, a.Input, tr.raw)
		}
		a.Label = "legit"
		if strings.Contains(string(a.Input), gift) {
			a.Label = "fraud"
		}
		b, _ := json.Marshal(a)
		labeled = append(labeled, string(b))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "attempts.jsonl")
	os.WriteFile(file, []byte(strings.Join(labeled, "\n")+"\n"), 0o600)
	rules := filepath.Join(dir, "rules.json")
	os.WriteFile(rules, []byte(`[{"name": "gift cards", "expression": "merchant.category == \"gift_cards\"", "action": "block", "priority": 1}]`), 0o600)

	// Offline, against the candidate rule.
	out, errOut, err = w.cli("", "risk", "replay", file, "--rules", rules, "--url", "http://127.0.0.1:1")
	if err != nil {
		t.Fatalf("replay: %v %s", err, errOut)
	}
	for _, want := range []string{"6 attempts: 3 allow, 0 review, 3 block", "fraud      0       0      3", "legit      3       0      0",
		"fraud stopped (recall): 3 of 3 (100%)", "stops that were fraud (precision): 3 of 3 (100%)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("replay output lacks %q:\n%s", want, out)
		}
	}
	// Against the server's current rules (none): the recorded decisions.
	out, errOut, err = w.cli(w.op, "risk", "replay", file, "--json")
	if err != nil {
		t.Fatalf("replay against the server: %v %s", err, errOut)
	}
	// The fields of replay's --json report that this test reads.
	type replayReport struct {
		Attempts     int                       `json:"attempts"`
		Decisions    map[string]int            `json:"decisions"`
		Changed      []json.RawMessage         `json:"changed"`
		Confusion    map[string]map[string]int `json:"confusion"`
		ChangedTotal int                       `json:"changed_total"`
		Note         string                    `json:"note"`
	}
	var rep replayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Attempts != 6 || len(rep.Changed) != 0 {
		t.Fatalf("replay with the server's rules changed recorded decisions: %s", out)
	}
	// With a rule set on the server, replaying without --rules uses it:
	// here an allow rule that would have let the gift cards through.
	w.ok(200, w.call("POST", "/v1/risk/rules", w.op, "-", map[string]any{"name": "gift cards ok",
		"expression": `merchant.category == "gift_cards"`, "action": "allow", "priority": 1}))
	out, errOut, err = w.cli(w.op, "risk", "replay", file, "--json")
	if err != nil {
		t.Fatalf("replay against the server's rule: %v %s", err, errOut)
	}
	rep = replayReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.ChangedTotal != 3 || rep.Decisions["allow"] != 6 ||
		rep.Confusion["fraud"]["allow"] != 3 || rep.Note == "" {
		t.Fatalf("replay with the server's rule: %s", out)
	}
	// A broken file is refused with its line.
	os.WriteFile(file, []byte(labeled[0]+"\n{not json\n"), 0o600)
	if _, errOut, err = w.cli("", "risk", "replay", file, "--rules", rules); err == nil || !strings.Contains(errOut, "line 2") {
		t.Fatalf("broken replay file: %v %s", err, errOut)
	}
	// explain prints the signals for a person.
	p := w.ok(200, w.call("GET", "/v1/payments?limit=1", w.userKey, "", nil))
	id := p.body["data"].([]any)[0].(map[string]any)["id"].(string)
	if out, _, err := w.cli(w.userKey, "risk", "explain", id); err != nil || !strings.Contains(out, "decision") || !strings.Contains(out, "signals") {
		t.Fatalf("explain: %v %s", err, out)
	}
}

// TestRiskConcurrentBurst: a burst of concurrent attempts cannot all pass
// as the first: each assessed attempt counts in the velocities of the
// next, before it commits.
func TestRiskConcurrentBurst(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)
	loop := w.mandate("snacks", 5000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[string]int{}
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := w.pay(loop, w.cafe, 100, nil)
			mu.Lock()
			out[fmt.Sprintf("%d %s %s", r.status, r.str("status"), r.errField("code"))]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if out["201 captured "] != 10 || out["402  risk_blocked"] != 50 {
		t.Fatalf("60 concurrent payments: %v; want 10 captured and 50 blocked", out)
	}
}

// TestRiskReviewWithoutMandate: an agent payment no mandate covers, which
// risk control would also review, is asked for as no_mandate; approved
// and disputed, it is the agent's overreach, not unclear intent.
func TestRiskReviewWithoutMandate(t *testing.T) {
	t.Parallel()
	w := newRiskWorld(t)
	shop := w.merchant("Jeweller", "jewelry")
	w.clock.Advance(48 * time.Hour)
	r := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 600_000, "currency": "CNY", "merchant_id": shop}))
	if r.str("status") != "requires_confirmation" || riskOf(t, r).Decision != pb.RiskReview {
		t.Fatalf("no mandate, large, new payee: %s", r.raw)
	}
	w.approve(r)
	tr := w.ok(200, w.call("GET", "/v1/payments/"+r.str("id")+"/trace", w.userKey, "", nil))
	if !strings.Contains(string(tr.raw), `\"reason\":\"no_mandate\"`) {
		t.Fatalf("the confirmation's reason: %s", tr.raw)
	}
	d := w.ok(201, w.call("POST", "/v1/payments/"+r.str("id")+"/disputes", w.userKey, "", map[string]any{"reason": "not_as_intended"}))
	prop, _ := d.body["proposal"].(map[string]any)
	if prop["attribution"] != "agent_out_of_scope" || prop["check"] != "user_confirmation" {
		t.Fatalf("proposal: %s", d.raw)
	}
}
