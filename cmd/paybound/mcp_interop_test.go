package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/paybound/paybound/client"
)

// TestMCPInteropTypeScript: the reference TypeScript client
// (@modelcontextprotocol/sdk 1.32.2, interop/mcp.mjs) connects over stdio
// (`paybound mcp`) and over streamable HTTP (/mcp), lists the tools, pays
// under a mandate, asks the user for a mandate, retries, hits a decline
// and a key conflict, and buys through the ACP tools, reading structured results that it validates
// against the tools' output schemas.
func TestMCPInteropTypeScript(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("interop/node_modules is missing; ./test.sh runs npm ci in interop/")
		}
		t.Skip("interop/node_modules is missing; run ./test.sh")
	}
	bin := buildBinary(t)
	for _, transport := range []string{"stdio", "http"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, nil)
			s, jwk := newSigner(t)
			ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "TS", "public_key": json.RawMessage(jwk)}))
			agent, agentKey := ag.str("id"), ag.str("api_key")
			mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": agent, "description": "interop",
				"currency": "USD", "max_amount": 2000, "budget": map[string]any{"amount": 5000, "period": "week"}, "merchant_ids": []string{w.merch}})).str("id")
			card := w.ok(201, w.call("POST", "/v1/mandates/"+mdt+"/card", w.userKey, "", nil))
			prod := w.ok(201, w.call("POST", "/v1/products", w.merchKey, "", map[string]any{"name": "Beans", "sku": "B-1",
				"price": 900, "currency": "USD", "fulfillment": "digital"})).str("id")
			spec := map[string]any{"transport": transport, "mandate_id": mdt, "merchant_id": w.merch, "merchant2_id": w.merch2,
				"product_id": prod, "prefix": transport}
			if transport == "stdio" {
				spec["command"], spec["args"] = bin, []string{"mcp", "--server", w.m.URL()}
				spec["env"] = map[string]string{"PAYBOUND_AGENT_KEY": writeAgentKey(t, s), "PAYBOUND_KEY": ""}
			} else {
				spec["url"], spec["key"] = w.m.URL()+"/mcp", agentKey
			}
			cmd := exec.Command("node", "mcp.mjs")
			cmd.Dir, cmd.Stderr = dir, &testWriter{t}
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			b, _ := json.Marshal(spec)
			fmt.Fprintf(stdin, "%s\n", b)
			steps := map[string]map[string]any{}
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var step map[string]any
				if err := json.Unmarshal(sc.Bytes(), &step); err != nil {
					t.Fatalf("node printed %q", sc.Text())
				}
				name, _ := step["step"].(string)
				steps[name] = step
				if name == "session" {
					st, _ := step["structured"].(map[string]any)
					id, _ := st["id"].(string)
					dc := client.New(w.m.URL(), agentKey, client.WithDelegationKey(s.key))
					tok, err := dc.DelegatePayment(context.Background(), client.DelegatePaymentParams{Number: card.str("number"),
						CheckoutSessionID: id, MerchantID: w.merch, MaxAmount: 900, Currency: "USD", ExpiresAt: time.Now().Add(time.Hour)})
					if err != nil {
						t.Fatalf("delegate_payment for %q: %v (%v)", id, err, step)
					}
					fmt.Fprintf(stdin, "%s\n", tok.ID)
				}
			}
			if len(steps) != 11 {
				t.Fatalf("the TypeScript client stopped after %d steps: %v", len(steps), steps)
			}
			names, _ := steps["tools"]["names"].([]any)
			if len(names) != 15 || !slices.Contains(names, any("pay")) || steps["tools"]["annotated"] != true {
				t.Fatalf("tools: %v", steps["tools"])
			}
			structured := func(step string) map[string]any {
				st, _ := steps[step]["structured"].(map[string]any)
				return st
			}
			errCode := func(step string) any {
				e, _ := structured(step)["error"].(map[string]any)
				return e["code"]
			}
			if steps["wallet"]["isError"] != false || structured("wallet")["agent_id"] != agent {
				t.Fatalf("wallet: %v", steps["wallet"])
			}
			// The mandate request waits for the user, listed for them.
			if r := structured("request"); steps["request"]["isError"] != false || r["status"] != "awaiting_user" {
				t.Fatalf("request_mandate: %v", steps["request"])
			}
			if rs := w.ok(200, w.call("GET", "/v1/mandate_requests", w.userKey, "", nil)).body["data"].([]any); len(rs) != 1 ||
				rs[0].(map[string]any)["id"] != structured("request")["request_id"] || rs[0].(map[string]any)["status"] != "pending" {
				t.Fatalf("the user's mandate requests: %v", rs)
			}
			if p := structured("pay"); steps["pay"]["isError"] != false || p["status"] != "captured" || structured("retry")["id"] != p["id"] {
				t.Fatalf("pay %v, retry %v", steps["pay"], steps["retry"])
			}
			if steps["decline"]["isError"] != true || errCode("decline") != "mandate_merchant_not_allowed" {
				t.Fatalf("decline: %v", steps["decline"])
			}
			if steps["conflict"]["isError"] != true || errCode("conflict") != "idempotency_conflict" {
				t.Fatalf("conflict: %v", steps["conflict"])
			}
			if c := structured("completed"); steps["completed"]["isError"] != false || c["status"] != "completed" {
				t.Fatalf("completed: %v", steps["completed"])
			}
			if steps["extras"]["prompt"] != float64(1) || steps["extras"]["mandates"] != float64(1) {
				t.Fatalf("prompt and resources: %v", steps["extras"])
			}
			if a, _ := w.balance(w.merchKey, "USD"); a != 300+900 {
				t.Fatalf("merchant's balance %d; want %d", a, 300+900)
			}
			w.verify()
		})
	}
}

// testWriter sends a process's stderr to the test's log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) { w.t.Logf("%s", b); return len(b), nil }

var _ io.Writer = (*testWriter)(nil)
