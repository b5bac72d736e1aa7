package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"crypto/ed25519"
)

// TestCLIX402: paybound x402 serve-demo sells, paybound x402 fetch pays an
// exact price and then ticks on a tab, and the demo claims its tabs when
// it stops.
func TestCLIX402(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "agent.key")
	enc := base64.RawURLEncoding.EncodeToString
	pub := w.payer.Key.Public().(ed25519.PublicKey)
	jwk, _ := json.Marshal(map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(pub), "d": enc(w.payer.Key.Seed())})
	if err := os.WriteFile(keyFile, jwk, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, stop := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"x402", "serve-demo", "--merchant", w.merch, "--addr", addr, "--tabs", filepath.Join(dir, "tabs.jsonl")},
			&out, &errOut, func(k string) string {
				return map[string]string{"PAYBOUND_URL": w.base, "PAYBOUND_KEY": w.merchKey}[k]
			})
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "serving"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve-demo did not start: %q %q", out.String(), errOut.String())
		}
	}
	env := map[string]string{"PAYBOUND_AGENT_KEY": keyFile}
	got, stderr, err := w.cliEnv(env, "x402", "fetch", "http://"+addr+"/quote", "--mandate", w.mandate)
	if err != nil || !strings.Contains(got, "status 200") || !regexp.MustCompile(`paid 0\.01 USD \(payment pay_`).MatchString(got) || !strings.Contains(got, "early bird") {
		t.Fatalf("x402 fetch /quote: %q %q %v", got, stderr, err)
	}
	for range 2 {
		got, stderr, err = w.cliEnv(env, "x402", "fetch", "http://"+addr+"/echo", "--mandate", w.mandate, "--tab", "0.10",
			"--method", "POST", "--data", "hello")
		if err != nil || !strings.Contains(got, "paid 0.0001 USD (on a tab)") || !strings.Contains(got, "hello") {
			t.Fatalf("x402 fetch /echo: %q %q %v", got, stderr, err)
		}
	}
	// Above the per-request cap: not paid.
	got, _, _ = w.cliEnv(env, "x402", "fetch", "http://"+addr+"/quote", "--mandate", w.mandate, "--max", "0.001")
	if !strings.Contains(got, "status 402") {
		t.Fatalf("above --max: %q", got)
	}
	before, _ := w.balance(w.merchKey, "USD")
	stop()
	if err := <-done; err != nil || !strings.Contains(out.String(), "claimed every tab") {
		t.Fatalf("serve-demo: %v %q %q", err, out.String(), errOut.String())
	}
	// Each fetch opened its own tab (a CLI process does not keep one):
	// two claims of one tick, each captured as one cent.
	if after, _ := w.balance(w.merchKey, "USD"); after != before+2 {
		t.Fatalf("the merchant got %d from the claims, want 2", after-before)
	}
	if _, _, err := w.cliEnv(env, "x402", "fetch", "http://"+addr+"/quote"); err == nil {
		t.Fatal("fetch without --mandate ran")
	}
	w.verify()
}
