package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cliEnv runs one CLI command against the world's server with env (and
// PAYBOUND_URL).
func (w *world) cliEnv(env map[string]string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	get := func(k string) string {
		if k == "PAYBOUND_URL" {
			return w.base
		}
		return env[k]
	}
	err = run(context.Background(), args, &out, &errb, get)
	return out.String(), errb.String(), err
}

// cliJSON runs a CLI command with --json and decodes its output.
func (w *world) cliJSON(env map[string]string, v any, args ...string) {
	w.t.Helper()
	out, errOut, err := w.cliEnv(env, append(args, "--json")...)
	if err != nil || json.Unmarshal([]byte(out), v) != nil {
		w.t.Fatalf("%v: %q %q %v", args, out, errOut, err)
	}
}

var payIDRe = regexp.MustCompile(`pay_[0-9a-z]+`)

// TestCLICheckoutBuy: the README's tour from the command line. A merchant
// lists two products; the user registers an agent with a keygen'd key,
// grants it a mandate and issues it a card; the agent buys both with
// `checkout buy`: the payment is captured and the balances move. Paying
// with a wrong card, without the agent's key, or at another merchant is a
// clear error that charges nothing; a session is paid once.
func TestCLICheckoutBuy(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	user := map[string]string{"PAYBOUND_KEY": w.userKey}
	merch := map[string]string{"PAYBOUND_KEY": w.merchKey}
	var tea, mug struct {
		ID string `json:"id"`
	}
	w.cliJSON(merch, &tea, "products", "create", "--name", "Green tea (e-book)", "--price", "12.00", "--currency", "USD", "--fulfillment", "digital")
	w.cliJSON(merch, &mug, "products", "create", "--name", "Mug", "--price", "25.00", "--currency", "USD", "--fulfillment", "shipping")

	keyFile := filepath.Join(t.TempDir(), "agent.key")
	if out, errOut, err := w.cliEnv(nil, "agent", "keygen", "--out", keyFile); err != nil || !strings.Contains(out, "keyid") {
		t.Fatalf("keygen: %q %q %v", out, errOut, err)
	}
	var ag struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	w.cliJSON(user, &ag, "agents", "create", "--name", "Shopper", "--public-key", "@"+keyFile+".pub")
	var mdt struct {
		ID string `json:"id"`
	}
	w.cliJSON(user, &mdt, "mandates", "create", "--agent", ag.ID, "--description", "kitchen things", "--currency", "USD",
		"--max", "100.00", "--budget", "200.00", "--period", "week", "--merchants", w.merch)
	var card struct {
		Number   string `json:"number"`
		ExpMonth string `json:"exp_month"`
		ExpYear  string `json:"exp_year"`
	}
	w.cliJSON(user, &card, "mandates", "card", mdt.ID)
	exp := card.ExpMonth + "/" + card.ExpYear[2:]

	// signed: RFC 9421 signed requests; agent: the bearer key and the key
	// file that signs delegate_payment.
	signed := map[string]string{"PAYBOUND_AGENT_KEY": keyFile}
	bearer := map[string]string{"PAYBOUND_KEY": ag.APIKey}
	agent := map[string]string{"PAYBOUND_KEY": ag.APIKey, "PAYBOUND_AGENT_KEY": keyFile}
	const addr = "Ada Lovelace, 1 Main St, Springfield, IL, 62701, US"
	userBefore, _ := w.balance(w.userKey, "USD")
	charged := func(want int64) {
		t.Helper()
		if avail, _ := w.balance(w.userKey, "USD"); avail != userBefore-want {
			t.Fatalf("the user paid %d, want %d", userBefore-avail, want)
		}
		if avail, _ := w.balance(w.merchKey, "USD"); avail != want {
			t.Fatalf("the merchant has %d, want %d", avail, want)
		}
	}

	// A session of two teas and a mug, paid by hand; it needs an address.
	out, errOut, err := w.cliEnv(signed, "checkout", "create", "--merchant", w.merch, "--item", tea.ID+":2", "--item", mug.ID)
	if err != nil || !strings.Contains(out, "not_ready_for_payment: 49.00 USD") || !strings.Contains(out, "$.fulfillment_details.address") {
		t.Fatalf("checkout create: %q %q %v", out, errOut, err)
	}
	sid := regexp.MustCompile(`cs_[0-9a-z]+`).FindString(out)
	if _, errOut, err = w.cliEnv(agent, "checkout", "pay", sid, "--merchant", w.merch, "--card", card.Number); err == nil ||
		!strings.Contains(errOut, "error: checkout_session_state") || !strings.Contains(errOut, "is not ready for payment: $.fulfillment_details.address") || !strings.Contains(errOut, "$.fulfillment_details.address") {
		t.Fatalf("pay without an address: %q %v", errOut, err)
	}
	if out, errOut, err = w.cliEnv(bearer, "checkout", "update", sid, "--merchant", w.merch, "--ship-to", addr); err != nil ||
		!strings.Contains(out, "ready_for_payment: 49.00 USD") || !strings.Contains(out, "ship to Ada Lovelace, 1 Main St, Springfield, IL 62701, US") {
		t.Fatalf("checkout update: %q %q %v", out, errOut, err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no agent key", bearer, []string{"--merchant", w.merch, "--card", card.Number}, "set PAYBOUND_AGENT_KEY"},
		{"a wrong card", agent, []string{"--merchant", w.merch, "--card", "4242424242424242"}, "error: invalid_card: "},
		{"a wrong expiry", agent, []string{"--merchant", w.merch, "--card", card.Number, "--exp", card.ExpMonth + "/21"}, "error: invalid_card: exp_year does not match"},
		{"a bad expiry", agent, []string{"--merchant", w.merch, "--card", card.Number, "--exp", "13/29"}, "must be MM/YY"},
		{"another merchant", agent, []string{"--merchant", w.merch2, "--card", card.Number}, "error: resource_missing: "},
		{"no card", agent, []string{"--merchant", w.merch}, "--card is required"},
	} {
		_, errOut, err := w.cliEnv(c.env, append([]string{"checkout", "pay", sid}, c.args...)...)
		if err == nil || !strings.Contains(errOut, c.want) {
			t.Errorf("pay with %s: %q %v; want %q", c.name, errOut, err, c.want)
		}
	}
	if _, errOut, err = w.cliEnv(bearer, "checkout", "buy", "--merchant", w.merch, "--item", tea.ID, "--card", card.Number); err == nil || !strings.Contains(errOut, "PAYBOUND_AGENT_KEY") {
		t.Fatalf("buy without an agent key: %q %v", errOut, err)
	}
	if out, errOut, err = w.cliEnv(agent, "checkout", "buy", "--merchant", w.merch, "--item", tea.ID, "--card", "9900010000000000000"); err == nil ||
		!strings.Contains(errOut, "error: invalid_card: ") || !strings.Contains(out, " is still open: paybound checkout pay cs_") {
		t.Fatalf("buy with a wrong card: %q %q %v", out, errOut, err)
	}
	charged(0)
	if out, _, err = w.cliEnv(bearer, "checkout", "get", sid, "--merchant", w.merch); err != nil || !strings.Contains(out, sid+" ready_for_payment: 49.00 USD") {
		t.Fatalf("the session after the refusals: %q %v", out, err)
	}

	// Paid with --key and --agent-key.
	out, errOut, err = w.cliEnv(nil, "checkout", "pay", sid, "--merchant", w.merch, "--card", card.Number, "--exp", exp, "--key", ag.APIKey, "--agent-key", keyFile)
	if err != nil || !strings.Contains(out, sid+" completed: order ord_") || !strings.Contains(out, "captured 49.00 USD → "+w.merch) {
		t.Fatalf("checkout pay: %q %q %v", out, errOut, err)
	}
	charged(4900)
	if _, errOut, err = w.cliEnv(agent, "checkout", "pay", sid, "--merchant", w.merch, "--card", card.Number); err == nil ||
		!strings.Contains(errOut, "error: checkout_session_state: checkout session "+sid+" is completed already") {
		t.Fatalf("pay twice: %q %v", errOut, err)
	}
	charged(4900)

	// The tour: one command buys a tea and a mug, every request signed
	// with the agent's key file, delegate_payment included.
	out, errOut, err = w.cliEnv(signed, "checkout", "buy", "--merchant", w.merch, "--item", tea.ID, "--item", mug.ID,
		"--ship-to", addr, "--card", card.Number, "--exp", exp)
	if err != nil || !strings.Contains(out, "created: 37.00 USD") || !strings.Contains(out, "completed: order ord_") || !strings.Contains(out, "captured 37.00 USD") {
		t.Fatalf("checkout buy: %q %q %v", out, errOut, err)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+payIDRe.FindString(out), ag.APIKey, "", nil))
	if p.str("status") != "captured" || p.num("amount") != 3700 || p.str("mandate_id") != mdt.ID || p.str("agent_id") != ag.ID || p.str("merchant_id") != w.merch {
		t.Fatalf("the payment: %s", p.raw)
	}
	charged(8600)

	// A repeated buy with the same --idempotency-key finds its paid session.
	var first, again struct {
		ID       string         `json:"id"`
		Status   string         `json:"status"`
		Metadata map[string]any `json:"metadata"`
	}
	buy := []string{"checkout", "buy", "--merchant", w.merch, "--item", tea.ID, "--card", card.Number, "--idempotency-key", "order-7"}
	w.cliJSON(agent, &first, buy...)
	w.cliJSON(agent, &again, buy...)
	if first.Status != "completed" || again.ID != first.ID || again.Status != "completed" || again.Metadata["payment_id"] != first.Metadata["payment_id"] {
		t.Fatalf("buy, repeated: %+v then %+v", first, again)
	}
	charged(9800)

	// Cancel: an open session can be; a canceled one cannot be paid.
	if out, errOut, err = w.cliEnv(signed, "checkout", "create", "--merchant", w.merch, "--item", tea.ID); err != nil {
		t.Fatalf("checkout create: %q %q %v", out, errOut, err)
	}
	sid2 := regexp.MustCompile(`cs_[0-9a-z]+`).FindString(out)
	if out, errOut, err = w.cliEnv(signed, "checkout", "cancel", sid2, "--merchant", w.merch); err != nil || !strings.Contains(out, sid2+" canceled") {
		t.Fatalf("checkout cancel: %q %q %v", out, errOut, err)
	}
	if _, errOut, err = w.cliEnv(signed, "checkout", "cancel", sid2, "--merchant", w.merch); err == nil || !strings.Contains(errOut, "error: checkout_session_state") {
		t.Fatalf("cancel twice: %q %v", errOut, err)
	}
	if _, errOut, err = w.cliEnv(agent, "checkout", "pay", sid2, "--merchant", w.merch, "--card", card.Number); err == nil || !strings.Contains(errOut, "is canceled, so it cannot be paid; nothing was charged") {
		t.Fatalf("pay a canceled session: %q %v", errOut, err)
	}
	if _, errOut, err = w.cliEnv(signed, "checkout", "create", "--merchant", w.merch, "--item", "tea"); err == nil || !strings.Contains(errOut, "not a product ID") {
		t.Fatalf("a bad --item: %q %v", errOut, err)
	}
	charged(9800)

	// Above the mandate's confirm_above, the purchase waits for the user.
	var m2 struct {
		ID string `json:"id"`
	}
	w.cliJSON(user, &m2, "mandates", "create", "--agent", ag.ID, "--description", "ask me above 5 dollars", "--currency", "USD",
		"--max", "100.00", "--budget", "200.00", "--confirm-above", "5.00")
	var card2 struct {
		Number string `json:"number"`
	}
	w.cliJSON(user, &card2, "mandates", "card", m2.ID)
	out, errOut, err = w.cliEnv(agent, "checkout", "buy", "--merchant", w.merch, "--item", tea.ID, "--card", card2.Number)
	if err != nil || !strings.Contains(out, "pending_approval: payment pay_") || !strings.Contains(out, "waits for the user's approval: http") {
		t.Fatalf("buy above confirm_above: %q %q %v", out, errOut, err)
	}
	charged(9800)
	w.verify()
}
