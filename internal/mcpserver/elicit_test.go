package mcpserver_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/mcpserver"
)

// TestPayElicitsConfirmation: when pay answers requires_confirmation and
// the client declared URL-mode elicitation (2025-11-25), the server shows
// the user the confirmation link there; the user's accept opens the link
// and approves nothing (the payment still waits, no money moved). A client
// without URL elicitation, or of 2026-07-28 (no requests to the client),
// gets the link in the result only.
func TestPayElicitsConfirmation(t *testing.T) {
	w := newWorld(t)
	u := w.user(t, 10000)
	a := w.agent(t, u)
	m := w.merchant(t, "shop")
	mdt := w.mandate(t, u, a, 5000, 9000, 1000) // above 10.00 the user confirms
	urlCaps := &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}}
	formCaps := &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}}}
	for i, c := range []struct {
		name    string
		caps    *mcp.ClientCapabilities
		version string
		answer  string
		want    string // the answer's elicitation
	}{
		{"url mode, the user opens the link", urlCaps, "2025-11-25", "accept", "accept"},
		{"url mode, the user declines", urlCaps, "2025-11-25", "decline", "decline"},
		{"form mode only", formCaps, "2025-11-25", "accept", ""},
		{"protocol 2026-07-28", urlCaps, "", "accept", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var asked []*mcp.ElicitParams
			cs := w.connectWith(t, mcpserver.AgentSide, a, &mcp.ClientOptions{Capabilities: c.caps,
				ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					mu.Lock()
					defer mu.Unlock()
					asked = append(asked, req.Params)
					return &mcp.ElicitResult{Action: c.answer}, nil
				}}, &mcp.ClientSessionOptions{ProtocolVersion: c.version})
			var p mcpserver.PaymentOut
			txt := ok(t, cs, "pay", map[string]any{"merchant_id": m.ID, "amount": 2000, "currency": "USD", "description": "a lamp",
				"mandate_id": mdt, "idempotency_key": "e" + string(rune('0'+i))}, &p)
			if p.Status != "requires_confirmation" || p.Elicitation != c.want {
				t.Fatalf("pay = %+v, %q", p, txt)
			}
			mu.Lock()
			defer mu.Unlock()
			if c.want == "" {
				if len(asked) != 0 {
					t.Fatalf("elicited %+v", asked[0])
				}
				return
			}
			if len(asked) != 1 || asked[0].Mode != "url" || asked[0].URL != p.ConfirmationURL || asked[0].ElicitationID != p.ID ||
				!strings.Contains(asked[0].Message, "20.00 USD") {
				t.Fatalf("elicitation %+v", asked)
			}
			if !strings.Contains(txt, "shown the confirmation link") {
				t.Fatalf("text %q", txt)
			}
			var got mcpserver.PaymentOut
			ok(t, cs, "get_payment", map[string]any{"payment_id": p.ID}, &got)
			if got.Status != "requires_confirmation" {
				t.Fatalf("an elicitation approved the payment: %+v", got)
			}
		})
	}
	if w.available(t, u) != 10000 || w.available(t, pb.Principal{Role: pb.RoleMerchant, ID: m.ID}) != 0 {
		t.Fatal("money moved before the user approved")
	}
	w.verify(t)
}
