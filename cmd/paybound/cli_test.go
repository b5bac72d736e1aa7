package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
	"github.com/paybound/paybound/internal/stepup"
)

// cliRun runs one CLI command against the world's server with key.
func (w *world) cli(key string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	env := map[string]string{"PAYBOUND_URL": w.base, "PAYBOUND_KEY": key}
	err = run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return out.String(), errb.String(), err
}

// TestCLI drives the client commands against the real server: human output,
// --json, decimal amounts, and errors.
func TestCLI(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	out, _, err := w.cli(w.userKey, "topup", "12.34", "usd")
	if err != nil || !strings.Contains(out, "12.34 USD") {
		t.Fatalf("topup: %q %v", out, err)
	}
	out, _, err = w.cli(w.op, "fund", w.user, "0.66", "USD", "--reference", "wire #7")
	if err != nil || !strings.Contains(out, "+0.66 USD to "+w.user) {
		t.Fatalf("fund: %q %v", out, err)
	}
	out, _, err = w.cli(w.userKey, "pay", "--merchant", w.merch, "--amount", "30.00", "--currency", "USD", "--manual", "--json")
	var p struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Amount int64  `json:"amount"`
	}
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p.Status != "authorized" || p.Amount != 3000 {
		t.Fatalf("pay --json: %q %v", out, err)
	}
	// The shortest hold the README allows, computed on the CLI's clock.
	t0 := time.Now()
	out, _, err = w.cli(w.userKey, "pay", "--merchant", w.merch, "--amount", "1.00", "--currency", "USD", "--manual", "--expires-in", "1m", "--json")
	var short struct {
		ID        string    `json:"id"`
		Status    string    `json:"status"`
		ExpiresAt time.Time `json:"authorization_expires_at"`
	}
	if err != nil || json.Unmarshal([]byte(out), &short) != nil || short.Status != "authorized" || short.ExpiresAt.Before(t0.Add(time.Minute).Truncate(time.Second)) {
		t.Fatalf("pay --expires-in 1m: %q %v", out, err)
	}
	if out, _, err = w.cli(w.userKey, "cancel", short.ID); err != nil || !strings.Contains(out, "canceled") {
		t.Fatalf("cancel: %q %v", out, err)
	}
	out, _, err = w.cli(w.merchKey, "capture", p.ID, "--amount", "25.00")
	if err != nil || !strings.Contains(out, "25.00") || !strings.Contains(out, "captured") {
		t.Fatalf("capture: %q %v", out, err)
	}
	out, _, err = w.cli(w.merchKey, "refund", p.ID, "--amount", "5.00", "--reason", "missing item")
	if err != nil || !strings.Contains(out, "5.00") {
		t.Fatalf("refund: %q %v", out, err)
	}
	out, _, err = w.cli(w.userKey, "balance")
	// 500.00 + 12.34 + 0.66 - 25.00 + 5.00
	if err != nil || !strings.Contains(out, "493.00") {
		t.Fatalf("balance: %q %v", out, err)
	}
	out, _, err = w.cli(w.userKey, "payments", "list")
	if err != nil || !strings.Contains(out, p.ID) {
		t.Fatalf("payments list: %q %v", out, err)
	}
	out, _, err = w.cli(w.op, "ledger", "verify")
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("ledger verify: %q %v", out, err)
	}
	// A decline prints its code and payment ID and fails.
	_, errOut, err := w.cli(w.userKey, "pay", "--merchant", w.merch, "--amount", "9999.00", "--currency", "USD")
	if !errors.Is(err, cmdline.ErrReported) || !strings.Contains(errOut, "insufficient_funds") || !strings.Contains(errOut, "pay_") {
		t.Fatalf("declined pay: %q %v", errOut, err)
	}
	// Amount with too many decimals is refused before any request.
	_, errOut, err = w.cli(w.userKey, "topup", "1.001", "USD")
	if err == nil || !strings.Contains(errOut, "invalid_amount") {
		t.Fatalf("topup 1.001: %q %v", errOut, err)
	}
	// A wrong key is an authentication error.
	_, errOut, err = w.cli("pbk_usr_wrong", "balance")
	if err == nil || !strings.Contains(errOut, "unauthenticated") {
		t.Fatalf("wrong key: %q %v", errOut, err)
	}
	// Unknown commands are refused with usage.
	if _, errOut, err = w.cli(w.userKey, "frobnicate"); err == nil || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %q %v", errOut, err)
	}
}

// TestCLIMandates: a user grants a mandate from the command line, the agent
// pays under it, and the revocation stops it.
func TestCLIMandates(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	out, errOut, err := w.cli(w.userKey, "mandates", "create", "--agent", w.agent, "--description", "coffee",
		"--currency", "usd", "--max", "5.00", "--budget", "10.00", "--period", "week", "--merchants", w.merch,
		"--days", "mon,tue,wed,thu,fri,sat,sun", "--hours", "00:00-23:59", "--json")
	var m struct {
		ID              string `json:"id"`
		RemainingBudget int64  `json:"remaining_budget"`
	}
	if err != nil || json.Unmarshal([]byte(out), &m) != nil || m.RemainingBudget != 1000 {
		t.Fatalf("mandates create: %q %q %v", out, errOut, err)
	}
	out, _, err = w.cli(w.agentKey, "pay", "--merchant", w.merch, "--amount", "4.00", "--currency", "USD", "--mandate", m.ID)
	if err != nil || !strings.Contains(out, "captured 4.00 USD") {
		t.Fatalf("pay under the mandate: %q %v", out, err)
	}
	out, _, err = w.cli(w.userKey, "mandates", "get", m.ID)
	if err != nil || !strings.Contains(out, "6.00 left of 10.00 per week") || !strings.Contains(out, "payments so far: 1") {
		t.Fatalf("mandates get: %q %v", out, err)
	}
	out, _, err = w.cli(w.agentKey, "mandates", "list")
	if err != nil || !strings.Contains(out, m.ID) {
		t.Fatalf("mandates list: %q %v", out, err)
	}
	if out, _, err = w.cli(w.userKey, "mandates", "revoke", m.ID); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("mandates revoke: %q %v", out, err)
	}
	_, errOut, err = w.cli(w.agentKey, "pay", "--merchant", w.merch, "--amount", "1.00", "--currency", "USD", "--mandate", m.ID)
	if err == nil || !strings.Contains(errOut, "mandate_revoked") {
		t.Fatalf("pay after revoke: %q %v", errOut, err)
	}
	if _, errOut, err = w.cli(w.userKey, "mandates", "create", "--agent", w.agent, "--currency", "USD", "--max", "1.00", "--budget", "1.00", "--days", "mon"); err == nil {
		t.Fatalf("--days without --hours accepted: %q", errOut)
	}
}

func TestCLITOTP(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 40, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	out, _, err := w.cli(w.userKey, "totp", "enroll", "--json")
	var e struct {
		Secret string `json:"secret"`
	}
	if err != nil || json.Unmarshal([]byte(out), &e) != nil || e.Secret == "" {
		t.Fatalf("totp enroll: %q %v", out, err)
	}
	secret, err := stepup.DecodeTOTPSecret(e.Secret)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = w.cli(w.userKey, "totp", "verify", stepup.TOTPCode(secret, clock.Now()))
	if err != nil || !strings.Contains(out, "active") {
		t.Fatalf("totp verify: %q %v", out, err)
	}
}

// TestCLIApprove: the agent's payment waits; the user approves it from the
// command line with a one-time code.
func TestCLIApprove(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 11, 27, 12, 0, 40, 0, time.UTC)}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	out, _, err := w.cli(w.userKey, "totp", "enroll", "--json")
	var e struct {
		Secret string `json:"secret"`
	}
	if err != nil || json.Unmarshal([]byte(out), &e) != nil {
		t.Fatalf("enroll: %q %v", out, err)
	}
	secret, _ := stepup.DecodeTOTPSecret(e.Secret)
	now := clock.Now()
	if _, _, err := w.cli(w.userKey, "totp", "verify", stepup.TOTPCode(secret, now.Add(-stepup.TOTPStep))); err != nil {
		t.Fatalf("verify: %v", err)
	}
	out, _, err = w.cli(w.agentKey, "pay", "--merchant", w.merch, "--amount", "3.00", "--currency", "USD")
	if err != nil || !strings.Contains(out, "requires_confirmation") || !strings.Contains(out, "paybound approve cfm_") {
		t.Fatalf("agent pay: %q %v", out, err)
	}
	cfm := out[strings.Index(out, "cfm_") : strings.Index(out, "cfm_")+30]
	// The user finds it in the list of what waits for them.
	out, _, err = w.cli(w.userKey, "confirmations", "list")
	if err != nil || !strings.Contains(out, cfm) || !strings.Contains(out, "3.00 USD") || !strings.Contains(out, w.agent) {
		t.Fatalf("confirmations list: %q %v", out, err)
	}
	if _, _, err := w.cli(w.agentKey, "confirmations", "list"); err == nil {
		t.Fatal("an agent listed its user's confirmations")
	}
	out, _, err = w.cli(w.userKey, "approve", cfm, "--totp", stepup.TOTPCode(secret, now))
	if err != nil || !strings.Contains(out, "captured 3.00 USD") {
		t.Fatalf("approve: %q %v", out, err)
	}
	out, _, err = w.cli(w.agentKey, "pay", "--merchant", w.merch, "--amount", "1.00", "--currency", "USD")
	if err != nil || !strings.Contains(out, "cfm_") {
		t.Fatalf("second agent pay: %q %v", out, err)
	}
	cfm = out[strings.Index(out, "cfm_") : strings.Index(out, "cfm_")+30]
	if out, _, err = w.cli(w.userKey, "deny", cfm); err != nil || !strings.Contains(out, "canceled") {
		t.Fatalf("deny: %q %v", out, err)
	}
	if out, _, err = w.cli(w.userKey, "confirmations", "list"); err != nil || !strings.Contains(out, "nothing waits for you") {
		t.Fatalf("confirmations list once answered: %q %v", out, err)
	}
}

// TestCLISignedAgent: keygen, register the key, and pay with requests
// signed from PAYBOUND_AGENT_KEY, without any bearer key.
func TestCLISignedAgent(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	keyFile := filepath.Join(t.TempDir(), "agent.key")
	out, _, err := w.cli(w.userKey, "agent", "keygen", "--out", keyFile, "--json")
	var k struct {
		KeyID string `json:"keyid"`
	}
	if err != nil || json.Unmarshal([]byte(out), &k) != nil || k.KeyID == "" {
		t.Fatalf("keygen: %q %v", out, err)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	out, _, err = w.cli(w.userKey, "agents", "create", "--name", "signer", "--public-key", "@"+keyFile+".pub", "--json")
	var ag struct {
		ID string `json:"id"`
	}
	if err != nil || !strings.Contains(out, k.KeyID) || json.Unmarshal([]byte(out), &ag) != nil {
		t.Fatalf("agents create: %q %v", out, err)
	}
	var outb, errb bytes.Buffer
	env := map[string]string{"PAYBOUND_URL": w.base, "PAYBOUND_AGENT_KEY": keyFile}
	err = run(context.Background(), []string{"pay", "--merchant", w.merch, "--amount", "2.00", "--currency", "USD"}, &outb, &errb,
		func(k string) string { return env[k] })
	if err != nil || !strings.Contains(outb.String(), "requires_confirmation") {
		t.Fatalf("signed pay: %q %q %v", outb.String(), errb.String(), err)
	}
	os.Chmod(keyFile, 0o644)
	outb.Reset()
	errb.Reset()
	if err := run(context.Background(), []string{"balance"}, &outb, &errb, func(k string) string { return env[k] }); err == nil || !strings.Contains(errb.String(), "chmod 600") {
		t.Fatalf("a readable key file was used: %q %v", errb.String(), err)
	}
}

// TestCLIAgentKeys rotates an agent's key with the CLI: the new key signs,
// the revoked one is refused, and bad input changes nothing.
func TestCLIAgentKeys(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	dir := t.TempDir()
	oldKey, newKey := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	keyids := map[string]string{}
	for _, f := range []string{oldKey, newKey} {
		out, _, err := w.cli(w.userKey, "agent", "keygen", "--out", f, "--json")
		var k struct {
			KeyID string `json:"keyid"`
		}
		if err != nil || json.Unmarshal([]byte(out), &k) != nil {
			t.Fatalf("keygen: %q %v", out, err)
		}
		keyids[f] = k.KeyID
	}
	out, _, err := w.cli(w.userKey, "agents", "create", "--name", "rotator", "--public-key", "@"+oldKey+".pub", "--json")
	var ag struct {
		ID string `json:"id"`
	}
	if err != nil || json.Unmarshal([]byte(out), &ag) != nil {
		t.Fatalf("agents create: %q %v", out, err)
	}
	pay := func(keyFile string) (string, error) {
		var outb, errb bytes.Buffer
		env := map[string]string{"PAYBOUND_URL": w.base, "PAYBOUND_AGENT_KEY": keyFile}
		err := run(context.Background(), []string{"pay", "--merchant", w.merch, "--amount", "1.00", "--currency", "USD"}, &outb, &errb,
			func(k string) string { return env[k] })
		return outb.String() + errb.String(), err
	}
	list := func() string {
		out, _, err := w.cli(w.userKey, "agents", "keys", "list", ag.ID)
		if err != nil {
			t.Fatalf("keys list: %v", err)
		}
		return out
	}

	// Bad input: each is refused and no key is added.
	for _, args := range [][]string{
		{"agents", "keys", "add", ag.ID},                                        // no --public-key
		{"agents", "keys", "add", "--public-key", "@" + newKey + ".pub"},        // no agent
		{"agents", "keys", "add", ag.ID, "--public-key", "{not json"},           // not a JWK
		{"agents", "keys", "add", ag.ID, "--public-key", "@" + oldKey + ".pub"}, // already registered
		{"agents", "keys", "add", ag.ID, "--public-key", "@" + newKey + ".pub", "--rotate-after", "-1h"},
		{"agents", "keys", "add", ag.ID, "--public-key", "@" + newKey + ".pub", "--rotate-after", "1000h"},
		{"agents", "keys", "add", "agt_00000000000000000000000000", "--public-key", "@" + newKey + ".pub"}, // no such agent
		{"agents", "keys", "revoke", ag.ID, "nosuchkey"},
		{"agents", "keys", "list"},
	} {
		if _, _, err := w.cli(w.userKey, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
	if got := list(); strings.Count(got, "\n") != 1 || !strings.Contains(got, keyids[oldKey]+" ") || !strings.Contains(got, "active") {
		t.Fatalf("after bad input, keys are:\n%s", got)
	}

	out, _, err = w.cli(w.userKey, "agents", "keys", "add", ag.ID, "--public-key", "@"+newKey+".pub", "--rotate-after", "1h")
	if err != nil || !strings.Contains(out, keyids[newKey]) || !strings.Contains(out, "1h0m0s") {
		t.Fatalf("keys add: %q %v", out, err)
	}
	got := list()
	if !strings.Contains(got, keyids[oldKey]+" ") || !strings.Contains(got, "active until") || strings.Count(got, "\n") != 2 {
		t.Fatalf("during the grace period, keys are:\n%s", got)
	}
	for _, f := range []string{oldKey, newKey} { // both sign during the grace period
		if out, err := pay(f); err != nil {
			t.Fatalf("pay with %s: %q %v", f, out, err)
		}
	}
	out, _, err = w.cli(w.userKey, "agents", "keys", "revoke", ag.ID, keyids[oldKey])
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("keys revoke: %q %v", out, err)
	}
	if out, err := pay(oldKey); err == nil || !strings.Contains(out, "key_revoked") {
		t.Fatalf("a revoked key paid: %q %v", out, err)
	}
	if out, err := pay(newKey); err != nil {
		t.Fatalf("pay with the new key: %q %v", out, err)
	}
	var keys []struct {
		KeyID  string `json:"keyid"`
		Active bool   `json:"active"`
	}
	out, _, err = w.cli(w.userKey, "agents", "keys", "list", ag.ID, "--json")
	if err != nil || json.Unmarshal([]byte(out), &keys) != nil || len(keys) != 2 {
		t.Fatalf("keys list --json: %q %v", out, err)
	}
	for _, k := range keys {
		if k.Active != (k.KeyID == keyids[newKey]) {
			t.Errorf("key %s active=%v", k.KeyID, k.Active)
		}
	}
}

// TestHelpAndVersion: help for a topic is that command's help; asking for
// help succeeds (exit 0) while a bad command line exits 2; flags print as
// --name, the way the README writes them; version names the build.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	runArgs := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, &out, &errb, func(string) string { return "" })
		return out.String(), errb.String(), exitCode(&errb, err)
	}
	for _, c := range []struct {
		args       []string
		code       int
		want, nope string
	}{
		{[]string{"help"}, 0, "paybound serve", ""},
		{[]string{"--help"}, 0, "paybound confirmations list", ""},
		{[]string{"help", "pay"}, 0, "usage: paybound pay --merchant", "paybound serve ["},
		{[]string{"help", "pay"}, 0, "  --amount string", "\n  -amount"},
		{[]string{"pay", "-h"}, 0, "  --merchant", ""},
		{[]string{"serve", "--help"}, 0, "  --addr string", "\n  -addr"},
		{[]string{"help", "serve"}, 0, "usage: paybound serve", ""},
		{[]string{"help", "mandates"}, 0, "usage: paybound mandates approve|card|cards|create|get|list|refuse|request|requests|revoke|revoke-card", ""},
		{[]string{"help", "bench", "payments"}, 0, "  --duration", ""},
		{[]string{"help", "nosuch"}, 2, "unknown command", ""},
		{[]string{}, 2, "Client", ""},
		{[]string{"pay", "--nosuch"}, 2, "flag provided but not defined", ""},
		{[]string{"mandates", "frobnicate"}, 2, "unknown subcommand", ""},
		{[]string{"version"}, 0, "paybound dev", ""},
	} {
		out, errOut, code := runArgs(c.args...)
		both := out + errOut
		if code != c.code || !strings.Contains(both, c.want) || (c.nope != "" && strings.Contains(both, c.nope)) {
			t.Errorf("paybound %q: exit %d (want %d), output:\n%s", c.args, code, c.code, both)
		}
	}
	if out, _, _ := runArgs("version"); !strings.Contains(out, "go1.") {
		t.Errorf("version lacks the build's Go version: %q", out)
	}
}
