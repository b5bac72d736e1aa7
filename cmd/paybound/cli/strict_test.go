package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paybound/paybound/internal/risk"
)

// runOffline runs the CLI with no server and returns its error output.
func runOffline(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	_, err := Run(context.Background(), args, &out, &errOut, func(k string) string {
		if k == "PAYBOUND_URL" {
			return "http://127.0.0.1:1"
		}
		return ""
	})
	return errOut.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayReadsLinesStrictly: a recorded attempt whose input another
// reader could take otherwise (a key twice, in capitals) is refused with
// its line; fields a newer export adds to an attempt are skipped.
func TestReplayReadsLinesStrictly(t *testing.T) {
	cfg := risk.Defaults()
	good := `{"payment_id":"pay_1","input":{"amount":100,"currency":"USD"}}`
	if rep, err := replay(t.Context(), strings.NewReader(good+"\n"+`{"payment_id":"pay_2","exported_by":"v2","input":{"amount":5}}`+"\n"), &cfg, nil); err != nil || rep.Attempts != 2 {
		t.Fatalf("good lines: %v %+v", err, rep)
	}
	for _, c := range []struct{ line, want string }{
		{`{"payment_id":"pay_2","input":{"amount":100,"amount":25000}}`, `line 2: "input.amount" is sent twice`},
		{`{"payment_id":"pay_2","input":{"amount":100,"AMOUNT":25000}}`, `line 2: input: key "AMOUNT" matches "amount"`},
		{`{"payment_id":"pay_2","input":{"amount":100,"metadata":{"a":"1","a":"2"}}}`, `line 2: "input.metadata.a" is sent twice`},
		{`{"payment_id":"pay_2","label":"legit","label":"fraud","input":{"amount":1}}`, `line 2: "label" is sent twice`},
		{`{"payment_id":"pay_2","Label":"fraud","input":{"amount":1}}`, `line 2: key "Label" matches "label"`},
		{"{\"payment_id\":\"pay_2\",\"input\":{\"description\":\"caf\xe9\"}}", `line 2: invalid UTF-8 in "input.description"`},
	} {
		_, err := replay(t.Context(), strings.NewReader(good+"\n"+c.line+"\n"), &cfg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.line, err, c.want)
		}
	}
}

// TestRulesFileReadStrictly: `risk replay --rules` refuses a rules file
// with a key twice or in capitals.
func TestRulesFileReadStrictly(t *testing.T) {
	attempts := writeFile(t, "attempts.jsonl", `{"payment_id":"pay_1","input":{"amount":100}}`+"\n")
	for _, c := range []struct{ rules, want string }{
		{`[{"name":"a","expression":"true","action":"allow","action":"block","priority":1}]`, `"[0].action" is sent twice`},
		{`[{"name":"a","expression":"true","Action":"block","priority":1}]`, `key "[0].Action" matches "action"`},
		{`[{"name":"a","expression":"true","action":"block","priority":1,"when":"x"}]`, `unknown field "[0].when"`},
	} {
		errOut, err := runOffline(t, "risk", "replay", attempts, "--rules", writeFile(t, "rules.json", c.rules))
		if err == nil || !strings.Contains(errOut+err.Error(), c.want) {
			t.Errorf("%s: %v %s, want %q", c.rules, err, errOut, c.want)
		}
	}
	if errOut, err := runOffline(t, "risk", "replay", attempts, "--rules",
		writeFile(t, "rules.json", `[{"name":"a","expression":"true","action":"block","priority":1}]`)); err != nil {
		t.Fatalf("a good rules file: %v %s", err, errOut)
	}
}

// TestAgentKeyFileReadStrictly: a private key file with "D" beside "d", or
// "d" twice, is refused; members other tools write (kid) are skipped.
func TestAgentKeyFileReadStrictly(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	enc := base64.RawURLEncoding.EncodeToString
	head := `{"kty":"OKP","crv":"Ed25519","x":"` + enc(pub) + `","d":"` + enc(priv.Seed()) + `"`
	if _, key, err := loadAgentKey(writeFile(t, "agent.key", head+`,"kid":"mine"}`)); err != nil || !key.Equal(priv) {
		t.Fatalf("a key file with kid: %v", err)
	}
	for _, extra := range []string{`,"D":"` + enc(other.Seed()) + `"`, `,"d":"` + enc(other.Seed()) + `"`} {
		if _, _, err := loadAgentKey(writeFile(t, "agent.key", head+extra+`}`)); err == nil {
			t.Errorf("key file %s accepted", head+extra+`}`)
		}
	}
}

// TestReceiptAndSeenFilesReadStrictly: `verify receipt` refuses a receipt
// or a file of seen checkpoints with a key twice, before anything is
// verified.
func TestReceiptAndSeenFilesReadStrictly(t *testing.T) {
	receipt := writeFile(t, "receipt.json", `{"object":"receipt","payment_id":"pay_1","payment_id":"pay_2","log_key":"k","proofs":[]}`)
	errOut, err := runOffline(t, "verify", "receipt", receipt, "--log-key", "k")
	if err == nil || !strings.Contains(errOut+err.Error(), `is not a receipt: "payment_id" is sent twice`) {
		t.Errorf("receipt with payment_id twice: %v %s", err, errOut)
	}
	seen := writeFile(t, "seen.json", `{"k":"a","k":"b"}`)
	if _, err := checkSeen(t.Context(), seen, "k", nil, nil); err == nil || !strings.Contains(err.Error(), `is not a file of seen checkpoints: "k" is sent twice`) {
		t.Errorf("seen file with a key twice: %v", err)
	}
}
