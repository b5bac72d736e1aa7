package acp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/strictjson"
)

// schema compiles def of testdata's schema file.
func schema(t *testing.T, file, def string) *jsonschema.Schema {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("file:///"+file, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("file:///" + file + "#/$defs/" + def)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func valid(t *testing.T, s *jsonschema.Schema, raw []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%v\n%s", err, raw)
	}
}

func examples(t *testing.T, file string) map[string]json.RawMessage { return examplesRaw(t, file) }

func examplesRaw(t testing.TB, file string) map[string]json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExampleRequestsDecode: every request example of the specification
// decodes, strictly, into the request Paybound reads, and gives the
// parameters it says.
func TestExampleRequestsDecode(t *testing.T) {
	ex := examples(t, "examples.agentic_checkout.json")
	for name, v := range map[string]any{
		"create_checkout_session_request":                               &checkout.CreateRequest{},
		"create_checkout_session_request_with_first_touch_attribution":  &checkout.CreateRequest{},
		"update_checkout_session_request":                               &checkout.UpdateRequest{},
		"complete_checkout_session_request":                             &checkout.CompleteRequest{},
		"complete_checkout_session_request_seller_backed":               &checkout.CompleteRequest{},
		"complete_checkout_session_request_with_last_touch_attribution": &checkout.CompleteRequest{},
		"complete_session_with_authentication_result_request":           &checkout.CompleteRequest{},
		"complete_session_with_denied_authentication_request":           &checkout.CompleteRequest{},
		"cancel_checkout_session_request": &struct {
			IntentTrace json.RawMessage `json:"intent_trace"`
		}{},
		"cancel_checkout_session_request_timing_deferred": &struct {
			IntentTrace json.RawMessage `json:"intent_trace"`
		}{},
	} {
		if err := strictjson.Unmarshal(ex[name], v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	var c checkout.CreateRequest
	strictjson.Unmarshal(ex["create_checkout_session_request"], &c)
	p, err := c.Params()
	if err != nil || p.Currency != "USD" || len(p.Lines) != 1 || p.Lines[0] != (checkout.LineParams{ProductID: "item_123", Quantity: 1}) ||
		p.FulfillmentDetails.Address.PostalCode != "94131" {
		t.Errorf("create params: %+v, %v", p, err)
	}
	var d checkout.DelegateRequest
	if err := strictjson.Unmarshal(examples(t, "examples.delegate_payment.json")["delegate_payment_request"], &d); err != nil {
		t.Fatal(err)
	}
	dp, err := d.Params()
	if err != nil || dp.Number != "4242424242424242" || dp.Allowance.MaxAmount != 2000 || dp.Allowance.Currency != "USD" ||
		!dp.Allowance.ExpiresAt.Equal(time.Date(2025, 10, 9, 7, 20, 50, 520000000, time.UTC)) {
		t.Errorf("delegate params: %+v, %v", dp, err)
	}
}

// TestOrderEvent: the order_create event the checkout hands the webhooks
// is ACP's webhook event: data an Order with the fields the webhook's
// EventDataOrder requires.
func TestOrderEvent(t *testing.T) {
	now := time.Date(2026, 4, 17, 10, 0, 0, 0, time.UTC)
	sess := &pb.CheckoutSession{ID: "cs_1", MerchantID: "mch_1", Status: pb.CheckoutCompleted, Currency: "USD", Total: 3700,
		Order: &pb.Order{ID: "ord_1", Number: "ABC", PaymentID: "pay_1", PermalinkURL: "https://pay.example.com/acp/mch_1/checkout_sessions/cs_1", CreatedAt: now}}
	ev, _ := json.Marshal(checkout.OrderEvent("order_create", sess, &pb.Payment{AmountCaptured: 3700, AmountRefunded: 2500}))
	var got struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	json.Unmarshal(ev, &got)
	valid(t, schema(t, "schema.agentic_checkout.json", "Order"), got.Data)
	var data map[string]any
	json.Unmarshal(got.Data, &data)
	for _, k := range []string{"type", "checkout_session_id", "permalink_url", "status"} {
		if data[k] == nil {
			t.Errorf("order event lacks %s: %s", k, ev)
		}
	}
	if got.Type != "order_create" || data["type"] != "order" || !strings.Contains(string(got.Data), `"amount_refunded","display_text":"Refunded","amount":2500`) {
		t.Errorf("order event: %s", ev)
	}
}

// TestAdmitRefusals: what the adapter refuses before any checkout
// operation, each in ACP's error shape with its status and code.
func TestAdmitRefusals(t *testing.T) {
	h := New(nil, func(r *http.Request, body []byte) (pb.Principal, error) {
		if r.Header.Get("Authorization") != "Bearer good" {
			return pb.Principal{}, pb.Errorf(pb.ErrUnauthenticated, "", "missing API key")
		}
		return pb.Principal{Role: pb.RoleAgent, ID: "agt_1", UserID: "usr_1"}, nil
	}, nil)
	errSchema := schema(t, "schema.agentic_checkout.json", "Error")
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string
	}{
		{"no version", "GET", "/acp/mch_1/checkout_sessions/cs_1", "", map[string]string{"API-Version": ""}, 400, "unsupported_api_version"},
		{"old version", "GET", "/acp/mch_1/checkout_sessions/cs_1", "", map[string]string{"API-Version": "2025-09-29"}, 400, "unsupported_api_version"},
		{"two versions", "GET", "/acp/mch_1/checkout_sessions/cs_1", "", map[string]string{"API-Version": "2026-04-17,2026-04-17"}, 400, "unsupported_api_version"},
		{"no key", "GET", "/acp/mch_1/checkout_sessions/cs_1", "", map[string]string{"Authorization": ""}, 401, "unauthenticated"},
		{"form body", "POST", "/acp/mch_1/checkout_sessions", "a=b", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"no idempotency key", "POST", "/acp/mch_1/checkout_sessions", "{}", map[string]string{"Idempotency-Key": ""}, 400, "idempotency_key_required"},
		{"long idempotency key", "POST", "/acp/mch_1/checkout_sessions", "{}", map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "idempotency_key_invalid"},
		{"no route", "GET", "/acp/mch_1/orders", "", nil, 404, "route_not_found"},
		{"bad JSON", "POST", "/acp/mch_1/checkout_sessions", "{", nil, 400, "invalid_json"},
		{"unknown field", "POST", "/acp/mch_1/checkout_sessions", `{"colour":"red"}`, nil, 400, "unknown_field"},
		{"no capabilities", "POST", "/acp/mch_1/checkout_sessions", `{"currency":"usd","line_items":[{"id":"prod_1"}]}`, nil, 400, "parameter_missing"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		r.Header.Set("Authorization", "Bearer good")
		r.Header.Set("API-Version", checkout.ACPVersion)
		r.Header.Set("Idempotency-Key", "k")
		r.Header.Set("Request-Id", "req_1")
		if tc.body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		for k, v := range tc.hdr {
			r.Header.Del(k)
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var e struct {
			Code              string   `json:"code"`
			SupportedVersions []string `json:"supported_versions"`
		}
		json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != tc.status || e.Code != tc.code || w.Header().Get("Request-Id") != "req_1" {
			t.Errorf("%s: %d %s; want %d %s", tc.name, w.Code, w.Body, tc.status, tc.code)
		}
		if tc.code == "unsupported_api_version" && (len(e.SupportedVersions) != 1 || e.SupportedVersions[0] != checkout.ACPVersion) {
			t.Errorf("%s: supported_versions %v", tc.name, e.SupportedVersions)
		}
		valid(t, errSchema, w.Body.Bytes())
	}
}

func TestJSONPath(t *testing.T) {
	for in, want := range map[string]string{"": "", "line_items[0].id": "$.line_items[0].id", "Idempotency-Key": "Idempotency-Key"} {
		if got := jsonPath(in); got != want {
			t.Errorf("jsonPath(%q) = %q, want %q", in, got, want)
		}
	}
}
