package httpapi_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// do sends one request; each value of header is sent as its own header
// line. A POST gets a fresh Idempotency-Key unless header has one.
func (fx *fixture) do(t *testing.T, method, path, key string, header http.Header, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, vs := range header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	if key != "" && len(req.Header.Values("Authorization")) == 0 {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if method == "POST" && len(req.Header.Values("Idempotency-Key")) == 0 {
		fx.seq++
		req.Header.Set("Idempotency-Key", "strict-"+strconv.Itoa(fx.seq))
	}
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, req)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

var jsonType = http.Header{"Content-Type": {"application/json"}}

func errorOf(body map[string]any) (code, param, message string) {
	e, _ := body["error"].(map[string]any)
	code, _ = e["code"].(string)
	param, _ = e["param"].(string)
	message, _ = e["message"].(string)
	return code, param, message
}

// state is what a refused request must leave as it was: the user's
// balances and payments, and the merchant's.
func (fx *fixture) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, key := range []string{fx.userKey, fx.merchantKey} {
		for _, path := range []string{"/v1/balance", "/v1/payments?limit=100"} {
			status, body := fx.do(t, "GET", path, key, nil, "")
			if status != 200 {
				t.Fatalf("GET %s: %d %v", path, status, body)
			}
			j, _ := json.Marshal(body)
			b.Write(j)
		}
	}
	return b.String()
}

// TestAmbiguousBodiesRefused: a body that a proxy or an agent-side check
// could read otherwise than Paybound (a key twice, a key in other letter
// cases, invalid UTF-8, a second document) is refused with a 400 naming
// the key, and nothing changes.
func TestAmbiguousBodiesRefused(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	pay := func(extra string) string {
		return `{"amount":100,"currency":"USD","merchant_id":"` + fx.merchant + `"` + extra + `}`
	}
	for _, c := range []struct {
		name, path, body string
		code, param      string
	}{
		{"amount twice", "/v1/payments", `{"amount":1,"currency":"USD","merchant_id":"` + fx.merchant + `","amount":250}`, "invalid_json", "amount"},
		{"amount twice, once escaped", "/v1/payments", pay(`,"\u0061mount":250`), "invalid_json", "amount"},
		{"merchant_id in capitals", "/v1/payments", `{"amount":100,"currency":"USD","MERCHANT_ID":"` + fx.merchant + `"}`, "unknown_field", "MERCHANT_ID"},
		{"currency beside Currency", "/v1/payments", pay(`,"Currency":"EUR"`), "unknown_field", "Currency"},
		{"metadata key twice", "/v1/payments", pay(`,"metadata":{"order":"1","order":"2"}`), "invalid_json", "metadata.order"},
		{"nested key twice", "/v1/payments", pay(`,"provenance":{"payee":"user","payee":"untrusted"}`), "invalid_json", "provenance.payee"},
		{"nested key in capitals", "/v1/payments", pay(`,"provenance":{"PAYEE":"user"}`), "unknown_field", "provenance.PAYEE"},
		{"nested unknown key", "/v1/payments", pay(`,"provenance":{"source":"x"}`), "unknown_field", "provenance.source"},
		{"invalid UTF-8", "/v1/payments", pay(",\"description\":\"caf\xe9\""), "invalid_json", "description"},
		{"invalid UTF-8 in a metadata key", "/v1/payments", pay(",\"metadata\":{\"\xff\":\"x\"}"), "invalid_json", "metadata"},
		{"unpaired surrogate", "/v1/payments", pay(`,"description":"\udc00"`), "invalid_json", "description"},
		{"a second document", "/v1/payments", pay("") + `{"amount":250}`, "invalid_json", ""},
		{"top-up amount twice", "/v1/topups", `{"amount":1,"currency":"USD","amount":100000}`, "invalid_json", "amount"},
		{"capture amount in capitals", "/v1/payments/pay_00000000000000000000000000/capture", `{"Amount":1}`, "unknown_field", "Amount"},
		{"nested past the limit", "/v1/payments", pay(`,"metadata":` + strings.Repeat("[", 70) + strings.Repeat("]", 70)), "invalid_json", ""},
		// Type errors answer as before.
		{"amount a string", "/v1/payments", `{"amount":"250","currency":"USD","merchant_id":"` + fx.merchant + `"}`, "invalid_amount", "amount"},
		{"metadata value a number", "/v1/payments", pay(`,"metadata":{"a":1}`), "parameter_invalid", "metadata"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := fx.state(t)
			key := fx.userKey
			if strings.Contains(c.path, "capture") {
				key = fx.merchantKey
			}
			status, body := fx.do(t, "POST", c.path, key, jsonType, c.body)
			code, param, msg := errorOf(body)
			if status != 400 || code != c.code || param != c.param || msg == "" {
				t.Fatalf("%d %s (param %q): %v; want 400 %s (param %q)", status, code, param, body, c.code, c.param)
			}
			if after := fx.state(t); after != before {
				t.Fatalf("a refused request changed state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestContentType: a POST body must be sent as application/json (charset
// utf-8 allowed); anything else is 415 and changes nothing. A POST with no
// body needs no Content-Type.
func TestContentType(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	body := `{"amount":100,"currency":"USD","merchant_id":"` + fx.merchant + `","capture_method":"manual"}`
	before := fx.state(t)
	for _, ct := range [][]string{
		{"application/x-www-form-urlencoded"}, // curl -d without -H
		{"text/plain"},                        // a browser's cross-origin POST without preflight
		{"multipart/form-data; boundary=x"},
		nil, // a body with no Content-Type
		{"application/json; charset=iso-8859-1"},
		{"application/json; charset=utf-16"},
		{"application/json; profile=x"},
		{"application/merge-patch+json"},
		{"application/json", "application/json"},
		{"application/json;;"},
	} {
		status, resp := fx.do(t, "POST", "/v1/payments", fx.userKey, http.Header{"Content-Type": ct}, body)
		code, param, msg := errorOf(resp)
		if status != http.StatusUnsupportedMediaType || code != "unsupported_media_type" || param != "Content-Type" || msg == "" {
			t.Errorf("Content-Type %q: %d %v; want 415 unsupported_media_type", ct, status, resp)
		}
	}
	// An empty body with a Content-Type that is not JSON is refused too.
	if status, resp := fx.do(t, "POST", "/v1/payments/pay_00000000000000000000000000/cancel", fx.merchantKey,
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, ""); status != 415 {
		t.Errorf("empty form body: %d %v", status, resp)
	}
	if after := fx.state(t); after != before {
		t.Fatalf("refused requests changed state:\nbefore %s\nafter  %s", before, after)
	}

	var ids []string
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", `Application/JSON;Charset="UTF-8"`} {
		status, resp := fx.do(t, "POST", "/v1/payments", fx.userKey, http.Header{"Content-Type": {ct}}, body)
		if status != 201 {
			t.Fatalf("Content-Type %q: %d %v", ct, status, resp)
		}
		ids = append(ids, resp["id"].(string))
	}
	// No body and no Content-Type, as the Go SDK and the CLI send them: the
	// whole hold captured, a cancel; and an empty JSON body.
	for i, path := range []string{"/v1/payments/" + ids[0] + "/capture", "/v1/payments/" + ids[1] + "/cancel"} {
		if status, resp := fx.do(t, "POST", path, fx.merchantKey, nil, ""); status != 200 {
			t.Fatalf("%d: POST %s with no body: %d %v", i, path, status, resp)
		}
	}
	if status, resp := fx.do(t, "POST", "/v1/payments/"+ids[2]+"/cancel", fx.merchantKey, jsonType, ""); status != 200 {
		t.Fatalf("cancel with an empty JSON body: %d %v", status, resp)
	}
}

// TestHeadersTwice: two Authorization or Idempotency-Key headers are
// refused, as Go would read the first and another server the last.
func TestHeadersTwice(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	body := `{"amount":100,"currency":"USD","merchant_id":"` + fx.merchant + `"}`
	before := fx.state(t)
	for _, c := range []struct {
		name         string
		method, path string
		header       http.Header
		code, param  string
	}{
		{"two keys", "POST", "/v1/payments", http.Header{"Authorization": {"Bearer " + fx.userKey, "Bearer " + fx.merchantKey}, "Content-Type": {"application/json"}},
			"parameter_invalid", "Authorization"},
		{"the same key twice", "GET", "/v1/balance", http.Header{"Authorization": {"Bearer " + fx.userKey, "Bearer " + fx.userKey}},
			"parameter_invalid", "Authorization"},
		{"an empty one first", "POST", "/v1/payments", http.Header{"Authorization": {"", "Bearer " + fx.userKey}, "Content-Type": {"application/json"}},
			"parameter_invalid", "Authorization"},
		{"two idempotency keys", "POST", "/v1/payments", http.Header{"Idempotency-Key": {"a", "b"}, "Content-Type": {"application/json"}},
			"idempotency_key_invalid", "Idempotency-Key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, resp := fx.do(t, c.method, c.path, fx.userKey, c.header, body)
			code, param, msg := errorOf(resp)
			if status != 400 || code != c.code || param != c.param || msg == "" {
				t.Fatalf("%d %v; want 400 %s (param %q)", status, resp, c.code, c.param)
			}
		})
	}
	if after := fx.state(t); after != before {
		t.Fatalf("refused requests changed state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestJWKMemberCase: a public key with "X" beside "x" is refused (JWK
// member names are case-sensitive, so another parser would ignore "X"),
// while members Paybound does not read are still allowed.
func TestJWKMemberCase(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	pub1, _, _ := ed25519.GenerateKey(nil)
	pub2, _, _ := ed25519.GenerateKey(nil)
	x1, x2 := base64.RawURLEncoding.EncodeToString(pub1), base64.RawURLEncoding.EncodeToString(pub2)
	status, ag := fx.do(t, "POST", "/v1/agents", fx.userKey, jsonType,
		`{"name":"a","public_key":{"kty":"OKP","crv":"Ed25519","x":"`+x1+`","kid":"mine","use":"sig"}}`)
	if status != 201 {
		t.Fatalf("a JWK with kid and use: %d %v", status, ag)
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/agents", `{"name":"b","public_key":{"kty":"OKP","crv":"Ed25519","x":"` + x1 + `","X":"` + x2 + `"}}`},
		{"/v1/agents", `{"name":"b","public_key":{"KTY":"OKP","crv":"Ed25519","x":"` + x1 + `"}}`},
		{"/v1/agents/" + ag["id"].(string) + "/keys", `{"public_key":{"kty":"OKP","crv":"Ed25519","X":"` + x2 + `","x":"` + x1 + `"}}`},
	} {
		status, resp := fx.do(t, "POST", c.path, fx.userKey, jsonType, c.body)
		code, param, _ := errorOf(resp)
		if status != 400 || code != "parameter_invalid" || param != "public_key" {
			t.Errorf("POST %s %s: %d %v; want 400 parameter_invalid public_key", c.path, c.body, status, resp)
		}
	}
	status, keys := fx.do(t, "GET", "/v1/agents/"+ag["id"].(string)+"/keys", fx.userKey, nil, "")
	if data, _ := keys["data"].([]any); status != 200 || len(data) != 1 {
		t.Fatalf("after the refusals the agent has keys %v", keys)
	}
}
