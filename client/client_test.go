package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
)

const testKey = "pbk_usr_test"

// fake is a scripted server: each request is recorded and answered by the
// next response in the script for its path (the last one repeats).
type fake struct {
	t      *testing.T
	mu     sync.Mutex
	reqs   []recorded
	script map[string][]func(w http.ResponseWriter, r *http.Request)
}

type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

func newFake(t *testing.T) (*fake, *client.Client) {
	t.Helper()
	f := &fake{t: t, script: map[string][]func(http.ResponseWriter, *http.Request){}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, client.New(srv.URL+"/", testKey)
}

func (f *fake) on(method, path string, answers ...func(http.ResponseWriter, *http.Request)) {
	f.script[method+" "+path] = answers
}

func (f *fake) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	k := r.Method + " " + r.URL.Path
	answers := f.script[k]
	var a func(http.ResponseWriter, *http.Request)
	if len(answers) > 0 {
		a = answers[0]
		if len(answers) > 1 {
			f.script[k] = answers[1:]
		}
	}
	f.mu.Unlock()
	if a == nil {
		f.t.Errorf("unexpected request %s", k)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	a(w, r)
}

func reply(status int, v any) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
}

func replyError(status int, code pb.Code, msg string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		body, _ := json.Marshal(map[string]any{"error": &pb.Error{Code: code, Message: msg}})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}
}

var payment = pb.Payment{ID: "pay_01", Object: "payment", Status: pb.StatusCaptured, Amount: 1250,
	AmountCaptured: 1250, Currency: "USD", MerchantID: "mch_01", PayerID: "usr_01", CaptureMethod: pb.CaptureAutomatic}

// freshKey is a default Idempotency-Key: pb.NewID without a prefix, 48 bits
// of milliseconds then 80 random bits in base32.
var freshKey = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{26}$`)

func TestPostSendsIdempotencyKeyAndReusesItOnRetry(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("POST", "/v1/payments",
		replyError(409, pb.ErrIdempotencyRunning, "still running", "Retry-After", "0"),
		replyError(409, pb.ErrIdempotencyRunning, "still running", "Retry-After", "0"),
		reply(201, payment))
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	p, err := c.CreatePayment(t.Context(), client.CreatePaymentParams{Amount: 1250, Currency: "USD",
		MerchantID: "mch_01", CaptureMethod: pb.CaptureManual, AuthorizationExpiresAt: &exp,
		Metadata: map[string]string{"order": "42"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "pay_01" || p.Amount != 1250 || p.Currency != "USD" {
		t.Fatalf("payment = %+v", p)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (two retries)", len(reqs))
	}
	key := reqs[0].Header.Get("Idempotency-Key")
	if !freshKey.MatchString(key) {
		t.Errorf("Idempotency-Key %q is not a fresh time-ordered key", key)
	}
	for i, r := range reqs {
		if got := r.Header.Get("Idempotency-Key"); got != key {
			t.Errorf("attempt %d sent Idempotency-Key %q, want the first attempt's %q", i, got, key)
		}
		if !bytes.Equal(r.Body, reqs[0].Body) {
			t.Errorf("attempt %d sent body %s, want %s", i, r.Body, reqs[0].Body)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
			t.Errorf("Authorization = %q", got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
	}
	// The body is exactly what the server decodes, with unknown fields refused.
	var in struct {
		Amount                 *int64            `json:"amount"`
		Currency               string            `json:"currency"`
		MerchantID             string            `json:"merchant_id"`
		Description            string            `json:"description"`
		MandateID              string            `json:"mandate_id"`
		CaptureMethod          pb.CaptureMethod  `json:"capture_method"`
		AuthorizationExpiresAt *time.Time        `json:"authorization_expires_at"`
		Metadata               map[string]string `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(reqs[0].Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("body %s: %v", reqs[0].Body, err)
	}
	if *in.Amount != 1250 || in.CaptureMethod != pb.CaptureManual || !in.AuthorizationExpiresAt.Equal(exp) || in.Metadata["order"] != "42" {
		t.Errorf("body = %s", reqs[0].Body)
	}
}

func TestFreshKeyPerCallUnlessContextSetsOne(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("POST", "/v1/topups", reply(201, pb.Topup{ID: "top_01", Status: "succeeded", Amount: 5000, Currency: "USD"}))
	ctx := t.Context()
	for range 2 {
		if _, err := c.Topup(ctx, 5000, "USD"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Topup(client.WithIdempotencyKey(ctx, "order-42"), 5000, "USD"); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	k0, k1, k2 := reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"), reqs[2].Header.Get("Idempotency-Key")
	if k0 == "" || k0 == k1 {
		t.Errorf("two calls sent keys %q and %q, want two fresh ones", k0, k1)
	}
	if k2 != "order-42" {
		t.Errorf("Idempotency-Key = %q, want the context's order-42", k2)
	}
}

func TestDeclineReturnsErrorWithPaymentID(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("POST", "/v1/payments", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusPaymentRequired)
		io.WriteString(w, `{"error":{"type":"payment_declined","code":"insufficient_funds","message":"the wallet's available USD balance is below 12.50","payment_id":"pay_declined"}}`+"\n")
	})
	p, err := c.CreatePayment(t.Context(), client.CreatePaymentParams{Amount: 1250, Currency: "USD", MerchantID: "mch_01"})
	if p != nil {
		t.Errorf("payment = %+v, want nil", p)
	}
	var e *pb.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *pb.Error", err, err)
	}
	if e.Code != pb.DeclineInsufficientFunds || e.PaymentID != "pay_declined" || e.Code.Type() != pb.TypeDeclined {
		t.Errorf("error = %+v", e)
	}
	if pb.ErrorCode(err) != pb.DeclineInsufficientFunds {
		t.Errorf("ErrorCode = %q", pb.ErrorCode(err))
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("a decline was sent %d times, want once", n)
	}
}

func TestBadJSONResponse(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("GET", "/v1/payments/pay_01", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>hello</html>")
	})
	f.on("GET", "/v1/balance", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>bad gateway</html>")
	})
	_, err := c.GetPayment(t.Context(), "pay_01")
	if !errors.Is(err, client.ErrBadResponse) {
		t.Fatalf("err = %v, want ErrBadResponse", err)
	}
	for _, want := range []string{"GET /v1/payments/pay_01", "200", "<html>hello</html>"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = c.Balance(t.Context())
	if !errors.Is(err, client.ErrBadResponse) || !strings.Contains(err.Error(), "502") {
		t.Errorf("err = %v, want ErrBadResponse naming 502", err)
	}
	var e *pb.Error
	if errors.As(err, &e) {
		t.Errorf("a body without an error object decoded as %+v", e)
	}
}

func TestListEncodesQuery(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("GET", "/v1/payments", reply(200, map[string]any{"object": "list", "data": []pb.Payment{payment}, "has_more": true}))
	page, err := c.ListPayments(t.Context(), client.ListParams{Limit: 5, StartingAfter: "pay_0 1&x=y"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != "pay_01" || !page.HasMore {
		t.Errorf("page = %+v", page)
	}
	if _, err := c.ListPayments(t.Context(), client.ListParams{}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if got, want := reqs[0].RawQuery, "limit=5&starting_after=pay_0+1%26x%3Dy"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
	if got := reqs[1].RawQuery; got != "" {
		t.Errorf("query of a default list = %q, want none", got)
	}
	if got := reqs[0].Header.Get("Idempotency-Key"); got != "" {
		t.Errorf("a GET sent Idempotency-Key %q", got)
	}
}

func TestOnlyInFlightConflictsAreRetried(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("POST", "/v1/payments/pay_01/capture", replyError(409, pb.ErrPaymentState, "payment pay_01 is captured"))
	_, err := c.Capture(t.Context(), "pay_01", nil)
	if pb.ErrorCode(err) != pb.ErrPaymentState {
		t.Fatalf("err = %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Errorf("%d attempts, want 1: payment_unexpected_state is final", len(reqs))
	}
	if string(reqs[0].Body) != "{}" {
		t.Errorf("capture of the whole hold sent %s, want {}", reqs[0].Body)
	}
}

func TestUnavailableRetriedThenReported(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("GET", "/v1/ledger/verify", replyError(503, pb.ErrLedgerStopped, "the ledger writer has stopped", "Retry-After", "0"))
	_, err := c.VerifyLedger(t.Context())
	if pb.ErrorCode(err) != pb.ErrLedgerStopped {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requests()); n != 1+client.MaxRetries {
		t.Errorf("%d attempts, want %d", n, 1+client.MaxRetries)
	}
}

func TestNetworkErrorRetriedWithSameKey(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("POST", "/v1/payments/pay_01/refunds",
		func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			conn.Close() // the response is lost: the client cannot know whether it happened
		},
		reply(201, pb.Refund{ID: "re_01", PaymentID: "pay_01", Amount: 100, Currency: "USD", Status: "succeeded"}))
	amount := int64(100)
	r, err := c.Refund(t.Context(), "pay_01", &amount, "damaged")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "re_01" || r.Amount != 100 {
		t.Errorf("refund = %+v", r)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d attempts, want 2", len(reqs))
	}
	if k := reqs[0].Header.Get("Idempotency-Key"); k == "" || k != reqs[1].Header.Get("Idempotency-Key") {
		t.Errorf("keys %q then %q, want one key", k, reqs[1].Header.Get("Idempotency-Key"))
	}
	if got := string(reqs[0].Body); got != `{"amount":100,"reason":"damaged"}` {
		t.Errorf("body = %s", got)
	}
}

func TestResponseTooLarge(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("GET", "/v1/payments/pay_01", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"`+strings.Repeat("x", client.MaxResponseBytes)+`"}`)
	})
	_, err := c.GetPayment(t.Context(), "pay_01")
	if !errors.Is(err, client.ErrBadResponse) || !strings.Contains(err.Error(), "more than") {
		t.Errorf("err = %v, want ErrBadResponse about the size", err)
	}
}

func TestCreateResultsCarryKeys(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("POST", "/v1/users", reply(201, map[string]any{"id": "usr_01", "name": "Ada", "created_at": "2026-01-01T00:00:00Z", "api_key": "pbk_usr_x"}))
	f.on("POST", "/v1/agents", reply(201, map[string]any{"id": "agt_01", "user_id": "usr_01", "name": "bot", "keyid": nil, "api_key": "pbk_agt_x"}))
	u, err := c.CreateUser(t.Context(), "Ada")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "usr_01" || u.Name != "Ada" || u.APIKey != "pbk_usr_x" || u.CreatedAt.IsZero() {
		t.Errorf("user = %+v", u)
	}
	a, err := c.CreateAgent(t.Context(), "bot", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "agt_01" || a.UserID != "usr_01" || a.APIKey != "pbk_agt_x" || a.KeyID != "" {
		t.Errorf("agent = %+v", a)
	}
	if got := string(f.requests()[1].Body); got != `{"name":"bot"}` {
		t.Errorf("agent body = %s", got)
	}
	if _, err := c.CreateAgent(t.Context(), "bot", json.RawMessage("{nope")); pb.ErrorCode(err) != pb.ErrParameterInvalid {
		t.Errorf("bad JWK: err = %v", err)
	}
	if _, err := c.GetPayment(t.Context(), ""); pb.ErrorCode(err) != pb.ErrParameterMissing {
		t.Errorf("empty ID: err = %v", err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests, want 2: invalid calls must not be sent", n)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("POST", "/v1/payments", replyError(409, pb.ErrIdempotencyRunning, "still running", "Retry-After", "1"))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.CreatePayment(ctx, client.CreatePaymentParams{Amount: 1, Currency: "USD", MerchantID: "mch_01"})
	if !errors.Is(err, context.DeadlineExceeded) || pb.ErrorCode(err) != pb.ErrIdempotencyRunning {
		t.Errorf("err = %v, want the deadline and the last error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v after the context ended", d)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("GET", "/healthz", reply(200, map[string]string{"status": "ok"}), replyError(503, pb.ErrUnavailable, "not ready"))
	if err := c.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Health(t.Context()); pb.ErrorCode(err) != pb.ErrUnavailable {
		t.Errorf("err = %v", err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests, want 2: Health does not retry", n)
	}
}

func TestAgentKeys(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	jwk := json.RawMessage(`{"kty":"OKP","crv":"Ed25519","x":"abc"}`)
	f.on("POST", "/v1/agents/agt_01/keys", reply(201, map[string]any{"keyid": "k2", "agent_id": "agt_01", "public_key": jwk, "active": true}))
	f.on("GET", "/v1/agents/agt_01/keys", reply(200, map[string]any{"object": "list", "data": []any{
		map[string]any{"keyid": "k1", "agent_id": "agt_01", "active": false, "revoked_at": "2026-01-01T00:00:00Z"},
		map[string]any{"keyid": "k2", "agent_id": "agt_01", "active": true}}}))
	f.on("POST", "/v1/agents/agt_01/keys/k1/revoke", reply(200, map[string]any{"keyid": "k1", "agent_id": "agt_01", "revoked_at": "2026-01-01T00:00:00Z"}))
	k, err := c.AddAgentKey(t.Context(), "agt_01", jwk, 90*time.Second)
	if err != nil || k.KeyID != "k2" || !k.Active || string(k.PublicKey) != string(jwk) {
		t.Fatalf("add = %+v, %v", k, err)
	}
	if got := string(f.requests()[0].Body); got != `{"public_key":{"kty":"OKP","crv":"Ed25519","x":"abc"},"rotate_after_seconds":90}` {
		t.Errorf("add body = %s", got)
	}
	keys, err := c.ListAgentKeys(t.Context(), "agt_01")
	if err != nil || len(keys) != 2 || keys[0].RevokedAt == nil || keys[0].Active || !keys[1].Active {
		t.Fatalf("list = %+v, %v", keys, err)
	}
	if k, err := c.RevokeAgentKey(t.Context(), "agt_01", "k1"); err != nil || k.RevokedAt == nil {
		t.Fatalf("revoke = %+v, %v", k, err)
	}
	for name, err := range map[string]error{
		"no agent":          func() error { _, err := c.AddAgentKey(t.Context(), "", jwk, 0); return err }(),
		"bad JWK":           func() error { _, err := c.AddAgentKey(t.Context(), "agt_01", json.RawMessage("{"), 0); return err }(),
		"negative rotation": func() error { _, err := c.AddAgentKey(t.Context(), "agt_01", jwk, -time.Second); return err }(),
		"list no agent":     func() error { _, err := c.ListAgentKeys(t.Context(), ""); return err }(),
		"revoke no keyid":   func() error { _, err := c.RevokeAgentKey(t.Context(), "agt_01", ""); return err }(),
	} {
		if code := pb.ErrorCode(err); code != pb.ErrParameterMissing && code != pb.ErrParameterInvalid {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if n := len(f.requests()); n != 3 {
		t.Errorf("%d requests, want 3: invalid calls must not be sent", n)
	}
}
