package acp

import (
	"testing"

	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/strictjson"
)

// FuzzRequests: any body decodes, or is refused, without a panic, and a
// decoded one gives parameters or a coded refusal.
func FuzzRequests(f *testing.F) {
	for _, name := range []string{"create_checkout_session_request", "update_checkout_session_request", "complete_checkout_session_request"} {
		f.Add([]byte(examplesRaw(f, "examples.agentic_checkout.json")[name]))
	}
	f.Add([]byte(examplesRaw(f, "examples.delegate_payment.json")["delegate_payment_request"]))
	f.Add([]byte(`{"line_items":[{"id":"prod_1"},{"id":"prod_1"}],"currency":"usd","capabilities":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var c checkout.CreateRequest
		if strictjson.Unmarshal(body, &c) == nil {
			c.Params()
		}
		var u checkout.UpdateRequest
		if strictjson.Unmarshal(body, &u) == nil {
			u.Params()
		}
		var k checkout.CompleteRequest
		if strictjson.Unmarshal(body, &k) == nil {
			k.Params()
		}
		var d checkout.DelegateRequest
		if strictjson.Unmarshal(body, &d) == nil {
			d.Params()
		}
	})
}
