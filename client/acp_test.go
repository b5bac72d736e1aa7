package client_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

// acpSession is a session as the server answers it, cut down.
var acpSession = map[string]any{"id": "cs_01", "status": "ready_for_payment", "currency": "usd",
	"line_items": []any{map[string]any{"id": "li_1", "product_id": "prod_tea", "name": "Tea", "quantity": 2, "unit_amount": 1200}},
	"totals":     []any{map[string]any{"type": "subtotal", "amount": 2400}, map[string]any{"type": "total", "amount": 2400}},
	"metadata":   map[string]any{"merchant_id": "mch_01", "agent_id": "agt_01"}, "created_at": "2026-04-17T10:00:00Z",
	"expires_at": "2026-04-18T10:00:00Z", "updated_at": "2026-04-17T10:00:00Z", "links": []any{}}

func replyACPError(status int, typ, code, msg, param string) func(http.ResponseWriter, *http.Request) {
	return reply(status, map[string]any{"type": typ, "code": code, "message": msg, "param": param})
}

// TestACPSessionCalls: the wire of create, update, get, complete and
// cancel: paths, ACP's headers, one unit per item, lower-case currency,
// and the session read back with its bytes.
func TestACPSessionCalls(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	base := "/acp/mch_01/checkout_sessions"
	f.on("POST", base, reply(201, acpSession))
	f.on("POST", base+"/cs_01", reply(200, acpSession))
	f.on("GET", base+"/cs_01", reply(200, acpSession))
	f.on("POST", base+"/cs_01/complete", reply(200, acpSession))
	f.on("POST", base+"/cs_01/cancel", reply(200, acpSession))
	ship := &pb.FulfillmentDetails{Name: "Ada", Address: &pb.Address{Name: "Ada", LineOne: "1 Main St", City: "Springfield", State: "IL", Country: "US", PostalCode: "62701"}}
	s, err := c.CreateCheckoutSession(t.Context(), "mch_01", client.CreateCheckoutSessionParams{Currency: "USD",
		Items: []client.CheckoutItem{{ProductID: "prod_tea", Quantity: 2}, {ProductID: "prod_mug"}}, FulfillmentDetails: ship})
	if err != nil || s.ID != "cs_01" || s.Total() != 2400 || s.ISOCurrency() != "USD" || s.MerchantID() != "mch_01" || s.PaymentID() != "" ||
		s.LineItems[0].Quantity != 2 || !strings.Contains(string(s.Raw), `"links":[]`) || s.ExpiresAt.IsZero() {
		t.Fatalf("create = %+v, %v", s, err)
	}
	if _, err := c.UpdateCheckoutSession(t.Context(), "mch_01", "cs_01", client.UpdateCheckoutSessionParams{FulfillmentDetails: ship}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCheckoutSession(t.Context(), "mch_01", "cs_01"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteCheckoutSession(t.Context(), "mch_01", "cs_01", "vt_01"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelCheckoutSession(t.Context(), "mch_01", "cs_01"); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	want := []string{
		`{"currency":"usd","line_items":[{"id":"prod_tea"},{"id":"prod_tea"},{"id":"prod_mug"}],"fulfillment_details":{"name":"Ada","address":{"name":"Ada","line_one":"1 Main St","city":"Springfield","state":"IL","country":"US","postal_code":"62701"}},"capabilities":{}}`,
		`{"fulfillment_details":{"name":"Ada","address":{"name":"Ada","line_one":"1 Main St","city":"Springfield","state":"IL","country":"US","postal_code":"62701"}}}`,
		``,
		`{"payment_data":{"handler_id":"paybound_agent_card","instrument":{"type":"card","credential":{"type":"spt","token":"vt_01"}}}}`,
		`{}`,
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, r := range reqs {
		if string(r.Body) != want[i] {
			t.Errorf("%s %s body = %s, want %s", r.Method, r.Path, r.Body, want[i])
		}
		if r.Header.Get("API-Version") != client.ACPVersion || !strings.HasPrefix(r.Header.Get("Request-Id"), "req_") ||
			r.Header.Get("Authorization") != "Bearer "+testKey {
			t.Errorf("%s %s headers = %v", r.Method, r.Path, r.Header)
		}
		if (r.Method == "POST") != freshKey.MatchString(r.Header.Get("Idempotency-Key")) {
			t.Errorf("%s %s Idempotency-Key = %q", r.Method, r.Path, r.Header.Get("Idempotency-Key"))
		}
	}
}

// TestACPErrors: ACP's error shape becomes an *ACPError carrying its type,
// code, message and param, which paybound.ErrorCode reads; an in-flight
// conflict is retried with the same Idempotency-Key and Request-Id; bad
// arguments are refused before anything is sent.
func TestACPErrors(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	base := "/acp/mch_01/checkout_sessions"
	f.on("POST", base+"/cs_01/cancel", replyACPError(405, "invalid_request", "checkout_session_state", "checkout session cs_01 is completed", ""))
	f.on("POST", base+"/cs_01", replyACPError(409, "invalid_request", "idempotency_in_flight", "running", "Idempotency-Key"),
		replyACPError(400, "invalid_request", "product_unavailable", "prod_x is archived", "$.line_items[0].id"))
	f.on("GET", base+"/cs_02", reply(502, "<html>bad gateway</html>"))
	_, err := c.CancelCheckoutSession(t.Context(), "mch_01", "cs_01")
	var ae *client.ACPError
	if !errors.As(err, &ae) || ae.Status != 405 || ae.Type != "invalid_request" || ae.Code != "checkout_session_state" ||
		pb.ErrorCode(err) != pb.ErrCheckoutState || !strings.HasPrefix(ae.RequestID, "req_") {
		t.Fatalf("cancel: %#v", err)
	}
	_, err = c.UpdateCheckoutSession(t.Context(), "mch_01", "cs_01", client.UpdateCheckoutSessionParams{Items: []client.CheckoutItem{{ProductID: "prod_x"}}})
	var pe *pb.Error
	if !errors.As(err, &ae) || ae.Param != "$.line_items[0].id" || !errors.As(err, &pe) || pe.Param != "line_items[0].id" || pe.Code != pb.ErrProductUnavailable {
		t.Fatalf("update: %v", err)
	}
	if err.Error() != "ACP 400 invalid_request: product_unavailable: prod_x is archived (param $.line_items[0].id)" {
		t.Errorf("message: %q", err)
	}
	reqs := f.requests()
	if a, b := reqs[1].Header, reqs[2].Header; a.Get("Idempotency-Key") != b.Get("Idempotency-Key") || a.Get("Request-Id") != b.Get("Request-Id") {
		t.Errorf("the retry changed its keys: %v then %v", a, b)
	}
	if _, err := c.GetCheckoutSession(t.Context(), "mch_01", "cs_02"); !errors.Is(err, client.ErrBadResponse) {
		t.Errorf("a body that is no ACP error: %v", err)
	}
	n := len(f.requests())
	for name, err := range map[string]error{
		"no merchant": func() error { _, err := c.GetCheckoutSession(t.Context(), "", "cs_01"); return err }(),
		"no session":  func() error { _, err := c.CancelCheckoutSession(t.Context(), "mch_01", ""); return err }(),
		"no items": func() error {
			_, err := c.CreateCheckoutSession(t.Context(), "mch_01", client.CreateCheckoutSessionParams{Currency: "usd"})
			return err
		}(),
		"no currency": func() error {
			_, err := c.CreateCheckoutSession(t.Context(), "mch_01", client.CreateCheckoutSessionParams{Items: []client.CheckoutItem{{ProductID: "prod_1"}}})
			return err
		}(),
		"too many units": func() error {
			_, err := c.CreateCheckoutSession(t.Context(), "mch_01", client.CreateCheckoutSessionParams{Currency: "usd",
				Items: []client.CheckoutItem{{ProductID: "prod_1", Quantity: 600}, {ProductID: "prod_2", Quantity: 401}}})
			return err
		}(),
		"no token": func() error { _, err := c.CompleteCheckoutSession(t.Context(), "mch_01", "cs_01", ""); return err }(),
		"no key": func() error {
			_, err := c.DelegatePayment(t.Context(), client.DelegatePaymentParams{Number: "1", CheckoutSessionID: "cs_01", MerchantID: "mch_01", MaxAmount: 1, Currency: "usd"})
			return err
		}(),
	} {
		if code := pb.ErrorCode(err); code != pb.ErrParameterMissing && code != pb.ErrParameterInvalid && code != pb.ErrSignatureMissing {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if len(f.requests()) != n {
		t.Errorf("invalid calls were sent")
	}
}

// TestDelegatePaymentSigned: delegate_payment's Signature is the agent's
// Ed25519 signature of "<Timestamp>.<body>"; a client that signs its
// requests (RFC 9421) sends this one with its bearer key; without a bearer
// key it sends an RFC 9421 signed request instead (the headers share a
// name), and a client with neither key sends nothing.
func TestDelegatePaymentSigned(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(nil)
	f := &fake{t: t, script: map[string][]func(http.ResponseWriter, *http.Request){}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.on("POST", "/agentic_commerce/delegate_payment", reply(201, map[string]any{"id": "vt_01", "created": "2026-04-17T10:00:00Z", "metadata": map[string]string{"merchant_id": "mch_01"}}))
	p := client.DelegatePaymentParams{Number: "9900011234567890123", ExpMonth: "07", ExpYear: "2029", CheckoutSessionID: "cs_01",
		MerchantID: "mch_01", MaxAmount: 2400, Currency: "USD", ExpiresAt: time.Date(2026, 4, 17, 11, 0, 0, 0, time.UTC)}
	if _, err := client.New(srv.URL, "", client.WithDelegationKey(priv)).DelegatePayment(t.Context(), p); pb.ErrorCode(err) != pb.ErrParameterMissing {
		t.Fatalf("a client with a delegation key and no bearer key: %v", err)
	}
	if _, err := client.New(srv.URL, "", client.WithAgentKey("kid", priv)).DelegatePayment(t.Context(), p); err != nil {
		t.Fatalf("a signing client without a bearer key: %v", err)
	}
	signed := f.requests()
	if len(signed) != 1 || signed[0].Header.Get("Signature-Input") == "" || signed[0].Header.Get("Timestamp") != "" || signed[0].Header.Get("Authorization") != "" {
		t.Fatalf("a signing client's delegate_payment is an RFC 9421 signed request: %+v", signed)
	}
	for _, c := range []*client.Client{
		client.New(srv.URL, testKey, client.WithAgentKey("kid", priv)),
		client.New(srv.URL, testKey, client.WithDelegationKey(priv)),
	} {
		tok, err := c.DelegatePayment(t.Context(), p)
		if err != nil || tok.ID != "vt_01" || tok.Metadata["merchant_id"] != "mch_01" || tok.Created.IsZero() {
			t.Fatalf("delegate = %+v, %v", tok, err)
		}
	}
	reqs := f.requests()[1:]
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		var body map[string]any
		json.Unmarshal(r.Body, &body)
		al := body["allowance"].(map[string]any)
		pm := body["payment_method"].(map[string]any)
		if al["currency"] != "usd" || al["max_amount"] != 2400.0 || al["expires_at"] != "2026-04-17T11:00:00Z" || al["reason"] != "one_time" ||
			pm["number"] != p.Number || pm["display_last4"] != "0123" || pm["exp_year"] != "2029" {
			t.Errorf("body = %s", r.Body)
		}
		ts := r.Header.Get("Timestamp")
		sig, err := base64.StdEncoding.DecodeString(r.Header.Get("Signature"))
		if _, perr := time.Parse(time.RFC3339, ts); perr != nil || err != nil || !ed25519.Verify(pub, append([]byte(ts+"."), r.Body...), sig) {
			t.Errorf("Timestamp %q, Signature %q do not verify", ts, r.Header.Get("Signature"))
		}
		if r.Header.Get("Authorization") != "Bearer "+testKey || r.Header.Get("Signature-Input") != "" {
			t.Errorf("authentication headers: %v", r.Header)
		}
	}
}
