package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestOperatorVisibility: every request is one access-log line at info
// (method, route pattern, status, latency, principal, request id) with no
// key or body in it; refused credentials are security events at warn;
// GET /metrics answers the Prometheus text format to the operator and on
// loopback, and refuses another principal.
func TestOperatorVisibility(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	w := newWorld(t, func(m *Main) {
		m.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 150, "currency": "USD",
		"merchant_id": w.merch, "description": "secret-description"}))
	if r := w.call("GET", "/v1/balance", "pbk_user_not-a-real-key", "", nil); r.status != 401 {
		t.Fatalf("a wrong key: %d", r.status)
	}
	if r := w.call("GET", "/v1/payments/"+p.str("id"), w.merchKey, "", nil); r.header.Get("Request-Id") == "" {
		t.Fatalf("no Request-Id in %v", r.header)
	}
	req, _ := http.NewRequest("GET", w.base+"/v1/balance", nil)
	req.Header.Set("Authorization", "Bearer "+w.userKey)
	req.Header.Set("Request-Id", "req-from-the-caller")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Request-Id") != "req-from-the-caller" {
		t.Fatalf("the caller's Request-Id was not echoed: %v", res.Header)
	}

	out := logs.String()
	for _, want := range []string{
		`msg=request method=POST route="POST /v1/payments" status=201`,
		`principal=` + w.user + ` request_id=req_`,
		`route="GET /v1/balance" status=200`,
		`request_id=req-from-the-caller`,
		`level=WARN msg="security event: authentication_failed" event=authentication_failed method=GET path=/v1/balance`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{w.userKey, w.merchKey, w.op, "not-a-real-key", "secret-description"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds a key or a body: %q", secret)
		}
	}

	// Loopback without a key, and the operator's key: the metrics.
	for _, key := range []string{"", w.op} {
		req, _ := http.NewRequest("GET", w.base+"/metrics", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("metrics: %d %v", res.StatusCode, res.Header)
		}
		for _, want := range []string{
			`paybound_http_requests_total{route="POST /v1/payments",status="201"} 1`,
			`paybound_http_requests_total{route="GET /v1/balance",status="401"} 1`,
			`paybound_ledger_batches_total `,
			`paybound_ledger_queue_depth 0`,
			`paybound_ledger_writer_up 1`,
			`paybound_ledger_commit_duration_seconds_bucket{le="+Inf"} `,
			`paybound_risk_decisions_total{decision="allow"} 1`,
			`paybound_http_request_duration_seconds_count `,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %q:\n%s", want, body)
			}
		}
	}
	// A user's key is refused, and so is a request that came through a proxy.
	if r := w.call("GET", "/metrics", w.userKey, "", nil); r.status != 403 || r.errField("code") != "forbidden" {
		t.Fatalf("metrics for a user: %d %s", r.status, r.raw)
	}
	req, _ = http.NewRequest("GET", w.base+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Fatalf("metrics through a proxy without a key: %v %v", res, err)
	}
}

// TestProtocolEdges: a 405 names the allowed methods in Allow; headers
// over the bound get 431 in the API's error shape; an amount that is not
// an integer of minor units says how to write one.
func TestProtocolEdges(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	if r := w.call("DELETE", "/v1/payments", w.userKey, "", nil); r.status != 405 || r.header.Get("Allow") != "GET, HEAD, POST" || r.errField("code") != "method_not_allowed" {
		t.Fatalf("DELETE /v1/payments: %d Allow %q %s", r.status, r.header.Get("Allow"), r.raw)
	}
	req, _ := http.NewRequest("GET", w.base+"/v1/balance", nil)
	req.Header.Set("Authorization", "Bearer "+w.userKey)
	req.Header.Set("X-Padding", strings.Repeat("a", 70<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 431 || !strings.Contains(string(body), `"code":"headers_too_large"`) || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("70 KiB of headers: %d %v %s", res.StatusCode, res.Header, body)
	}
	r := w.call("POST", "/v1/payments", w.userKey, "", `{"amount": 12.50, "currency": "USD", "merchant_id": "`+w.merch+`"}`)
	if r.status != 400 || r.errField("code") != "invalid_amount" || !strings.Contains(r.errField("message"), "12.50 USD is 1250") {
		t.Fatalf("a decimal amount: %d %s", r.status, r.raw)
	}
}
