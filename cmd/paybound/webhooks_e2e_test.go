package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/internal/storetest"
	"github.com/paybound/paybound/internal/webhooks"
	"github.com/paybound/paybound/internal/whsig"
)

// delivery is one request a receiver got.
type delivery struct {
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	event   struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		CreatedAt string `json:"created_at"`
		Data      struct {
			Object map[string]any `json:"object"`
		} `json:"data"`
	}
}

// receiver is a webhook endpoint on 127.0.0.1 that records what it gets
// and answers fail's status (200 while it is 0).
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []delivery
	fail atomic.Int32
	hits atomic.Int64
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		if s := r.fail.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		body, _ := io.ReadAll(req.Body)
		d := delivery{Headers: map[string]string{}, Body: string(body)}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "merchant-signature"} {
			if v := req.Header.Get(h); v != "" {
				d.Headers[h] = v
			}
		}
		_ = json.Unmarshal(body, &d.event)
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// wait waits until the receiver holds n events of which cond holds, or
// fails.
func (r *receiver) wait(t *testing.T, what string, within time.Duration, cond func([]delivery) bool) []delivery {
	t.Helper()
	end := time.Now().Add(within)
	for {
		ds := r.deliveries()
		if cond(ds) {
			return ds
		}
		if time.Now().After(end) {
			var types []string
			for _, d := range ds {
				types = append(types, d.event.Type)
			}
			t.Fatalf("%s: not within %v; got %v", what, within, types)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// types counts the event types a receiver got.
func types(ds []delivery) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		m[d.event.Type]++
	}
	return m
}

// hookWorld is a world whose server may deliver to 127.0.0.1, and retries
// fast.
func hookWorld(t *testing.T, configure func(*Main)) *world {
	return newWorld(t, func(m *Main) {
		fastHooks(m)
		if configure != nil {
			configure(m)
		}
	})
}

// fastHooks lets m deliver to 127.0.0.1 and retry fast.
func fastHooks(m *Main) {
	m.Config.WebhookAllowHosts = []string{"127.0.0.1"}
	m.Webhooks = func(c *webhooks.Config) {
		c.PollInterval = 10 * time.Millisecond
		c.Schedule = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond,
			300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	}
}

func (w *world) endpoint(key, url string, events ...string) (id, secret string) {
	w.t.Helper()
	r := w.ok(201, w.call("POST", "/v1/webhook_endpoints", key, "", map[string]any{"url": url, "events": events}))
	if !strings.HasPrefix(r.str("secret"), "whsec_") || !strings.HasPrefix(r.str("id"), "we_") || r.str("status") != "enabled" {
		w.t.Fatalf("endpoint: %s", r.raw)
	}
	return r.str("id"), r.str("secret")
}

// verifyAll checks every delivery's Standard Webhooks signature with one
// of secrets and its v1a signature with the server's public key.
func verifyAll(t *testing.T, w *world, ds []delivery, secrets ...string) {
	t.Helper()
	k := w.ok(200, w.call("GET", "/v1/webhooks/key", "", "", nil))
	pub, err := whsig.ParsePublicKey(k.str("public_key"))
	if err != nil {
		t.Fatalf("GET /v1/webhooks/key: %s: %v", k.raw, err)
	}
	for _, d := range ds {
		h := d.Headers
		if h["webhook-id"] != d.event.ID || !strings.HasPrefix(d.event.ID, "evt_") {
			t.Errorf("webhook-id %q for event %q", h["webhook-id"], d.event.ID)
		}
		for _, s := range secrets {
			key, _ := whsig.SecretKey(s)
			if err := whsig.Verify(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], []byte(d.Body), time.Now(), nil, key); err != nil {
				t.Errorf("%s signed by %s…: %v", d.event.Type, s[:10], err)
			}
		}
		if err := whsig.Verify(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], []byte(d.Body), time.Now(), ed25519.PublicKey(pub)); err != nil {
			t.Errorf("%s's v1a signature: %v", d.event.Type, err)
		}
		// The Go SDK's receiver helper, with the secret and with the key.
		hdr := http.Header{}
		for k, v := range h {
			hdr.Set(k, v)
		}
		for _, sk := range [][2]string{{secrets[0], ""}, {"", k.str("public_key")}} {
			if ev, err := client.VerifyWebhook(hdr, []byte(d.Body), sk[0], sk[1], time.Now()); err != nil || ev.ID != d.event.ID || ev.Type != d.event.Type {
				t.Errorf("client.VerifyWebhook of %s: %v, %v", d.event.Type, ev, err)
			}
		}
		if _, err := client.VerifyWebhook(hdr, []byte(d.Body+" "), secrets[0], "", time.Now()); err == nil {
			t.Errorf("client.VerifyWebhook accepted a tampered %s", d.event.Type)
		}
	}
}

// A merchant's receiver verifies the deliveries of real payments: an
// authorization, its capture, a refund, a dispute and its resolution;
// another merchant's receiver gets none of them, and the payer's gets its
// own view of the same events.
func TestWebhooksOfRealPayments(t *testing.T) {
	t.Parallel()
	w := hookWorld(t, nil)
	mr, other, payer := newReceiver(t), newReceiver(t), newReceiver(t)
	mEP, mSecret := w.endpoint(w.merchKey, mr.srv.URL+"/hooks", "*")
	_, _ = w.endpoint(w.merch2Key, other.srv.URL, "*")
	_, pSecret := w.endpoint(w.userKey, payer.srv.URL, "payment.captured", "dispute.created", "dispute.resolved")

	p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 3000, "currency": "USD",
		"merchant_id": w.merch, "capture_method": "manual"}))
	id := p.str("id")
	w.ok(200, w.call("POST", "/v1/payments/"+id+"/capture", w.merchKey, "", map[string]any{"amount": 2500}))
	w.ok(201, w.call("POST", "/v1/payments/"+id+"/refunds", w.merchKey, "", map[string]any{"amount": 500}))
	d := w.ok(201, w.call("POST", "/v1/payments/"+id+"/disputes", w.userKey, "", map[string]any{"reason": "not_as_intended"}))
	w.ok(200, w.call("POST", "/v1/disputes/"+d.str("id")+"/resolve", w.op, "", map[string]any{"outcome": "refund_full", "liable_party": "merchant"}))

	want := map[string]int{"payment.authorized": 1, "payment.captured": 1, "refund.succeeded": 2, "dispute.created": 1, "dispute.resolved": 1}
	ds := mr.wait(t, "the merchant's events", 10*time.Second, func(ds []delivery) bool { return len(ds) >= 6 })
	if got := types(ds); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the merchant got %v, want %v", got, want)
	}
	verifyAll(t, w, ds, mSecret)
	for _, x := range ds {
		o := x.event.Data.Object
		switch x.event.Type {
		case "payment.authorized":
			if o["id"] != id || o["status"] != "authorized" || o["risk"] != nil {
				t.Errorf("payment.authorized's object as the merchant sees it: %s", x.Body)
			}
		case "payment.captured":
			if o["status"] != "captured" || o["amount_captured"] != 2500.0 {
				t.Errorf("payment.captured's object: %s", x.Body)
			}
		case "refund.succeeded":
			if o["payment_id"] != id || !strings.HasPrefix(o["id"].(string), "re_") {
				t.Errorf("refund.succeeded's object: %s", x.Body)
			}
		case "dispute.created", "dispute.resolved":
			if o["id"] != d.str("id") || o["payment_id"] != id {
				t.Errorf("%s's object: %s", x.event.Type, x.Body)
			}
		}
	}
	pds := payer.wait(t, "the payer's events", 10*time.Second, func(ds []delivery) bool { return len(ds) >= 3 })
	if got := types(pds); got["payment.captured"] != 1 || got["dispute.created"] != 1 || got["dispute.resolved"] != 1 || len(got) != 3 {
		t.Fatalf("the payer (subscribed to three types) got %v", got)
	}
	verifyAll(t, w, pds, pSecret)
	// The payer sees the payment with its risk assessment; the merchant did not.
	for _, x := range pds {
		if x.event.Type == "payment.captured" && x.event.Data.Object["risk"] == nil {
			t.Errorf("the payer's payment.captured lacks the assessment the payer may see: %s", x.Body)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(other.deliveries()); n != 0 {
		t.Fatalf("another merchant received %d events of a payment it is no party to", n)
	}
	// The delivery log: each delivery succeeded on its first attempt.
	l := w.ok(200, w.call("GET", "/v1/webhook_endpoints/"+mEP+"/deliveries?limit=100", w.merchKey, "", nil))
	data := l.body["data"].([]any)
	if len(data) != 6 {
		t.Fatalf("%d deliveries listed, want 6: %s", len(data), l.raw)
	}
	for _, x := range data {
		dl := x.(map[string]any)
		if dl["status"] != "succeeded" || dl["attempts"] != 1.0 || dl["last_status_code"] != 200.0 {
			t.Errorf("delivery: %v", dl)
		}
	}
	one := w.ok(200, w.call("GET", "/v1/webhook_deliveries/"+data[0].(map[string]any)["id"].(string), w.merchKey, "", nil))
	if log, _ := one.body["attempt_log"].([]any); len(log) != 1 {
		t.Fatalf("a delivery's attempt log: %s", one.raw)
	}
	// Another merchant sees neither the endpoint nor its deliveries.
	for _, path := range []string{"/v1/webhook_endpoints/" + mEP, "/v1/webhook_endpoints/" + mEP + "/deliveries",
		"/v1/webhook_deliveries/" + data[0].(map[string]any)["id"].(string)} {
		if r := w.call("GET", path, w.merch2Key, "", nil); r.status != 404 {
			t.Errorf("GET %s by another merchant: %d %s", path, r.status, r.raw)
		}
	}
	w.verify()
}

// Bad inputs are refused with a coded error naming the parameter, and
// create nothing.
func TestWebhookEndpointInputs(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(m *Main) { m.Config.WebhookAllowHosts = []string{"127.0.0.1"} })
	for _, c := range []struct {
		body        map[string]any
		code, param string
	}{
		{map[string]any{"events": []string{"*"}}, "parameter_missing", "url"},
		{map[string]any{"url": "http://example.com/h", "events": []string{"*"}}, "parameter_invalid", "url"},
		{map[string]any{"url": "https://10.0.0.1/h", "events": []string{"*"}}, "parameter_invalid", "url"},
		{map[string]any{"url": "https://localhost/h", "events": []string{"*"}}, "parameter_invalid", "url"},
		{map[string]any{"url": "https://user:pw@example.com/h", "events": []string{"*"}}, "parameter_invalid", "url"},
		{map[string]any{"url": "ftp://example.com/h", "events": []string{"*"}}, "parameter_invalid", "url"},
		{map[string]any{"url": "https://example.com/" + strings.Repeat("a", 2048), "events": []string{"*"}}, "parameter_invalid", "url"},
		{map[string]any{"url": "https://example.com/h"}, "parameter_missing", "events"},
		{map[string]any{"url": "https://example.com/h", "events": []string{"payment.exploded"}}, "parameter_invalid", "events"},
		{map[string]any{"url": "https://example.com/h", "events": []string{"*"}, "format": "xml"}, "parameter_invalid", "format"},
		{map[string]any{"url": "https://example.com/h", "events": []string{"*"}, "secret": "mine"}, "unknown_field", "secret"},
	} {
		r := w.call("POST", "/v1/webhook_endpoints", w.merchKey, "", c.body)
		if r.status != 400 || r.errField("code") != c.code || r.errField("param") != c.param {
			t.Errorf("%v: %d %s, want %s on %s", c.body, r.status, r.raw, c.code, c.param)
		}
	}
	if r := w.call("POST", "/v1/webhook_endpoints", w.op, "", map[string]any{"url": "https://example.com/h", "events": []string{"*"}}); r.status != 403 {
		t.Errorf("the operator made an endpoint: %d %s", r.status, r.raw)
	}
	if r := w.call("POST", "/v1/webhook_endpoints", w.merchKey, "-", map[string]any{"url": "https://example.com/h", "events": []string{"*"}}); r.status != 400 || r.errField("code") != "idempotency_key_required" {
		t.Errorf("without an Idempotency-Key: %d %s", r.status, r.raw)
	}
	l := w.ok(200, w.call("GET", "/v1/webhook_endpoints", w.merchKey, "", nil))
	if n := len(l.body["data"].([]any)); n != 0 {
		t.Fatalf("refused requests left %d endpoints", n)
	}
	// At most 16 per owner.
	var first string
	for i := range pb.MaxWebhookEndpoints {
		id, _ := w.endpoint(w.merchKey, fmt.Sprintf("https://example.com/h%d", i), "payment.captured")
		if i == 0 {
			first = id
		}
	}
	if r := w.call("POST", "/v1/webhook_endpoints", w.merchKey, "", map[string]any{"url": "https://example.com/17", "events": []string{"*"}}); r.status != 400 || r.errField("code") != "parameter_invalid" {
		t.Fatalf("a 17th endpoint: %d %s", r.status, r.raw)
	}
	// The secret is shown once: not by GET or list.
	g := w.ok(200, w.call("GET", "/v1/webhook_endpoints/"+first, w.merchKey, "", nil))
	if g.str("secret") != "" || strings.Contains(string(g.raw), "whsec_") {
		t.Fatalf("GET shows the secret: %s", g.raw)
	}
	// Update: events replaced, bad events refused, other fields kept.
	u := w.ok(200, w.call("POST", "/v1/webhook_endpoints/"+first, w.merchKey, "", map[string]any{"events": []string{"refund.succeeded", "refund.succeeded"}, "disabled": true}))
	if fmt.Sprint(u.body["events"]) != "[refund.succeeded]" || u.str("status") != "disabled" || u.str("url") != "https://example.com/h0" {
		t.Fatalf("update: %s", u.raw)
	}
	if r := w.call("POST", "/v1/webhook_endpoints/"+first, w.merchKey, "", map[string]any{"events": []string{}}); r.status != 400 || r.errField("param") != "events" {
		t.Fatalf("empty events: %d %s", r.status, r.raw)
	}
	if r := w.call("POST", "/v1/webhook_endpoints/"+first, w.merch2Key, "", map[string]any{"disabled": false}); r.status != 404 {
		t.Fatalf("another merchant updated it: %d %s", r.status, r.raw)
	}
	// Delete, then it is gone, and the 16th slot is free again.
	del := w.ok(200, w.call("DELETE", "/v1/webhook_endpoints/"+first, w.merchKey, "", nil))
	if del.body["deleted"] != true {
		t.Fatalf("delete: %s", del.raw)
	}
	if r := w.call("GET", "/v1/webhook_endpoints/"+first, w.merchKey, "", nil); r.status != 404 {
		t.Fatalf("GET after delete: %d", r.status)
	}
	if r := w.call("DELETE", "/v1/webhook_endpoints/"+first, w.merchKey, "", nil); r.status != 404 {
		t.Fatalf("delete twice: %d", r.status)
	}
	w.endpoint(w.merchKey, "https://example.com/again", "*")
}

// A rotated secret signs beside the new one; a test event reaches the one
// endpoint asked; a failed delivery can be redelivered.
func TestWebhookRotateTestRedeliver(t *testing.T) {
	t.Parallel()
	w := hookWorld(t, nil)
	r := newReceiver(t)
	ep, oldSecret := w.endpoint(w.merchKey, r.srv.URL, "payment.captured")
	rot := w.ok(200, w.call("POST", "/v1/webhook_endpoints/"+ep+"/rotate_secret", w.merchKey, "", nil))
	newSecret := rot.str("secret")
	if !strings.HasPrefix(newSecret, "whsec_") || newSecret == oldSecret || rot.str("previous_secret_expires_at") == "" {
		t.Fatalf("rotate: %s", rot.raw)
	}
	tst := w.ok(201, w.call("POST", "/v1/webhook_endpoints/"+ep+"/test", w.merchKey, "", nil))
	w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch}))
	ds := r.wait(t, "the test event and the capture", 10*time.Second, func(ds []delivery) bool { return len(ds) >= 2 })
	if got := types(ds); got["webhook_endpoint.test"] != 1 || got["payment.captured"] != 1 {
		t.Fatalf("got %v", got)
	}
	for _, d := range ds {
		if d.event.Type == "webhook_endpoint.test" && d.event.ID != tst.str("id") {
			t.Errorf("the test event's id %s, answered %s", d.event.ID, tst.str("id"))
		}
	}
	verifyAll(t, w, ds, oldSecret, newSecret)

	// A failing receiver: the delivery retries, gives up after the
	// schedule, and a redelivery sends it again with the same id.
	r.fail.Store(503)
	w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 200, "currency": "USD", "merchant_id": w.merch}))
	var failed map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for failed == nil && time.Now().Before(deadline) {
		l := w.ok(200, w.call("GET", "/v1/webhook_endpoints/"+ep+"/deliveries", w.merchKey, "", nil))
		for _, x := range l.body["data"].([]any) {
			if d := x.(map[string]any); d["status"] == "failed" {
				failed = d
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if failed == nil || failed["attempts"] != 9.0 || failed["last_status_code"] != 503.0 {
		t.Fatalf("no delivery failed after the schedule's 9 attempts: %v", failed)
	}
	r.fail.Store(0)
	w.ok(200, w.call("POST", "/v1/webhook_deliveries/"+failed["id"].(string)+"/redeliver", w.merchKey, "-", nil))
	ds = r.wait(t, "the redelivery", 10*time.Second, func(ds []delivery) bool { return len(ds) >= 3 })
	if ds[2].event.ID != failed["event_id"] {
		t.Fatalf("redelivered %s, want %s", ds[2].event.ID, failed["event_id"])
	}
	if x := w.call("POST", "/v1/webhook_deliveries/"+failed["id"].(string)+"/redeliver", w.merch2Key, "-", nil); x.status != 404 {
		t.Fatalf("another merchant redelivered: %d", x.status)
	}
}

// The proof: a receiver that fails for a while, and a restart of Paybound
// in the middle of the retries; every event is delivered, and no event
// arrives twice under different ids.
func TestWebhooksSurviveFailuresAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	configure := func(m *Main) {
		m.Config.WebhookAllowHosts = []string{"127.0.0.1"}
		m.Webhooks = func(c *webhooks.Config) {
			c.PollInterval = 10 * time.Millisecond
			c.Schedule = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, time.Second, time.Second, time.Second,
				time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second}
		}
	}
	m := startMain(t, dir, configure)
	w := &world{api: &api{t: t, base: m.URL()}, m: m, op: m.OperatorKey}
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Ada"}))
	mc := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Cafe"}))
	w.ok(201, w.call("POST", "/v1/topups", u.str("api_key"), "", map[string]any{"amount": 100000, "currency": "USD"}))
	r := newReceiver(t)
	w.endpoint(mc.str("api_key"), r.srv.URL, "*")

	r.fail.Store(500)
	const n = 30
	var ids []string
	for i := range n {
		p := w.ok(201, w.call("POST", "/v1/payments", u.str("api_key"), "", map[string]any{"amount": 100 + i, "currency": "USD", "merchant_id": mc.str("id")}))
		ids = append(ids, p.str("id"))
	}
	// Retries have begun and keep failing.
	deadline := time.Now().Add(30 * time.Second)
	for r.hits.Load() < 3*n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r.hits.Load() < 3*n {
		t.Fatalf("only %d attempts reached the failing receiver", r.hits.Load())
	}
	m.Close()
	m2 := startMain(t, dir, configure)
	w.api = &api{t: t, base: m2.URL()}
	time.Sleep(300 * time.Millisecond)
	r.fail.Store(0)
	// Each payment was authorized and captured: 2n events.
	ds := r.wait(t, "every event after the restart", 30*time.Second, func(ds []delivery) bool {
		seen := map[string]bool{}
		for _, d := range ds {
			seen[d.event.ID] = true
		}
		return len(seen) >= 2*n
	})
	byWhat := map[string]map[string]bool{} // type and payment → webhook-ids
	for _, d := range ds {
		k := d.event.Type + " " + d.event.Data.Object["id"].(string)
		if byWhat[k] == nil {
			byWhat[k] = map[string]bool{}
		}
		byWhat[k][d.Headers["webhook-id"]] = true
	}
	for _, id := range ids {
		for _, typ := range []string{"payment.authorized", "payment.captured"} {
			if got := len(byWhat[typ+" "+id]); got != 1 {
				t.Errorf("%s of %s arrived under %d ids, want 1", typ, id, got)
			}
		}
	}
	if len(byWhat) != 2*n {
		t.Errorf("%d distinct events, want %d", len(byWhat), 2*n)
	}
}

// The npm standardwebhooks package, Standard Webhooks' reference library,
// verifies real deliveries, signed with a rotated secret and its
// successor; Node's crypto verifies their v1a signatures with the key
// GET /v1/webhooks/key serves.
func TestWebhooksVerifiedByStandardWebhooksNPM(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("interop/node_modules is missing; ./test.sh runs npm ci in interop/")
		}
		t.Skip("interop/node_modules is missing; run ./test.sh")
	}
	w := hookWorld(t, nil)
	r := newReceiver(t)
	ep, oldSecret := w.endpoint(w.merchKey, r.srv.URL, "*")
	p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 700, "currency": "USD", "merchant_id": w.merch}))
	r.wait(t, "the first events", 10*time.Second, func(ds []delivery) bool { return len(ds) >= 2 })
	newSecret := w.ok(200, w.call("POST", "/v1/webhook_endpoints/"+ep+"/rotate_secret", w.merchKey, "", nil)).str("secret")
	w.ok(201, w.call("POST", "/v1/payments/"+p.str("id")+"/refunds", w.merchKey, "", map[string]any{"amount": 100}))
	ds := r.wait(t, "the refund", 10*time.Second, func(ds []delivery) bool { return len(ds) >= 3 })
	key := w.ok(200, w.call("GET", "/v1/webhooks/key", "", "", nil)).str("public_key")
	run := func(secrets []string, ds []delivery) {
		t.Helper()
		in, _ := json.Marshal(map[string]any{"secrets": secrets, "public_key": key, "deliveries": ds})
		cmd := exec.Command("node", "webhooks.mjs")
		cmd.Dir, cmd.Stdin = dir, bytes.NewReader(in)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node webhooks.mjs: %v: %s", err, out)
		}
		var res struct{ Verified int }
		if json.Unmarshal(out, &res) != nil || res.Verified != len(ds) {
			t.Fatalf("node verified %s of %d deliveries", out, len(ds))
		}
	}
	run([]string{oldSecret}, ds[:2])            // before the rotation
	run([]string{oldSecret, newSecret}, ds[2:]) // after it: both secrets sign
	// And a secret of nobody's verifies none.
	in, _ := json.Marshal(map[string]any{"secrets": []string{whsig.NewSecret()}, "public_key": key, "deliveries": ds[:1]})
	cmd := exec.Command("node", "webhooks.mjs")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("another secret verified: %s", out)
	}
}

// The CLI manages endpoints: create shows the secret once, list, test,
// deliveries, rotate, update, delete; a bad event type is a coded error.
func TestCLIWebhooks(t *testing.T) {
	t.Parallel()
	w := hookWorld(t, nil)
	r := newReceiver(t)
	out, _, err := w.cli(w.merchKey, "webhook", "create", r.srv.URL, "--events", "payment.captured, refund.succeeded", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var ep pb.WebhookEndpoint
	if err := json.Unmarshal([]byte(out), &ep); err != nil || !strings.HasPrefix(ep.Secret, "whsec_") || len(ep.Events) != 2 {
		t.Fatalf("webhook create --json: %s (%v)", out, err)
	}
	if out, _, err = w.cli(w.merchKey, "webhook", "list"); err != nil || !strings.Contains(out, ep.ID) || strings.Contains(out, "whsec_") {
		t.Fatalf("webhook list: %s %v", out, err)
	}
	if out, _, err = w.cli(w.merchKey, "webhook", "test", ep.ID); err != nil || !strings.Contains(out, "webhook_endpoint.test") {
		t.Fatalf("webhook test: %s %v", out, err)
	}
	r.wait(t, "the test event", 10*time.Second, func(ds []delivery) bool { return len(ds) == 1 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, err = w.cli(w.merchKey, "webhook", "deliveries", ep.ID)
		if err == nil && strings.Contains(out, "succeeded") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out, "webhook_endpoint.test") || !strings.Contains(out, "succeeded") || !strings.Contains(out, "200") {
		t.Fatalf("webhook deliveries: %s %v", out, err)
	}
	if out, _, err = w.cli(w.merchKey, "webhook", "rotate", ep.ID); err != nil || !strings.Contains(out, "whsec_") || strings.Contains(out, ep.Secret) {
		t.Fatalf("webhook rotate: %s %v", out, err)
	}
	if out, _, err = w.cli(w.merchKey, "webhook", "update", ep.ID, "--disable"); err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("webhook update --disable: %s %v", out, err)
	}
	if out, _, err = w.cli(w.merchKey, "webhook", "key"); err != nil || !strings.HasPrefix(out, "whpk_") {
		t.Fatalf("webhook key: %s %v", out, err)
	}
	_, errOut, err := w.cli(w.merchKey, "webhook", "create", r.srv.URL, "--events", "payment.lost")
	if err == nil || !strings.Contains(errOut, "parameter_invalid") || !strings.Contains(errOut, "param events") {
		t.Fatalf("a bad event type: %s %v", errOut, err)
	}
	if out, _, err = w.cli(w.merchKey, "webhook", "delete", ep.ID); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("webhook delete: %s %v", out, err)
	}
	if _, errOut, err = w.cli(w.merchKey, "webhook", "get", ep.ID); err == nil || !strings.Contains(errOut, "resource_missing") {
		t.Fatalf("webhook get after delete: %s %v", errOut, err)
	}
}

// The transport refuses loopback and private addresses, after DNS, unless
// the URL's host is allowed; it follows no redirect.
func TestWebhookTransportRefusesPrivateAddresses(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	redirect := httptest.NewServer(http.RedirectHandler(r.srv.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	ctx := t.Context()
	_, port, _ := strings.Cut(strings.TrimPrefix(r.srv.URL, "http://"), ":")
	for _, c := range []struct {
		allow  []string
		url    string
		status int
	}{
		{nil, r.srv.URL, 0},
		{nil, "http://localhost:" + port, 0}, // a name that resolves to loopback
		{[]string{"10.0.0.1"}, r.srv.URL, 0},
		{[]string{"127.0.0.1"}, r.srv.URL, 200},
		{[]string{"localhost"}, "http://localhost:" + port, 200},
		{[]string{"127.0.0.1"}, redirect.URL, 302},
	} {
		status, err := newWebhookHTTP(c.allow).Post(ctx, c.url, map[string]string{"webhook-id": "evt_x"}, []byte("{}"))
		if c.status == 0 {
			if err == nil || !strings.Contains(err.Error(), "not a public address") {
				t.Errorf("allow %v, %s: %d %v; want refused", c.allow, c.url, status, err)
			}
			continue
		}
		if err != nil || status != c.status {
			t.Errorf("allow %v, %s: %d %v; want %d", c.allow, c.url, status, err, c.status)
		}
	}
	if n := r.hits.Load(); n != 2 {
		t.Fatalf("the receiver got %d requests; want the 2 allowed ones (not the redirect's)", n)
	}
}

// TestWebhooksSurviveKill kills the real binary with SIGKILL while
// deliveries are in flight and queued, and restarts it: every event of
// every acknowledged payment arrives, each under one id. (Deliveries
// claimed by the killed process wait for their lease to end, 30 seconds.)
func TestWebhooksSurviveKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and kills the real binary, then waits out a lease")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	db := storetest.Database(t, dir)
	p := startProcDB(t, bin, dir, db, "--webhook-allow-hosts", "127.0.0.1")
	opKey, err := os.ReadFile(filepath.Join(dir, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{t: t, base: p.base}
	op := strings.TrimSpace(string(opKey))
	mc := a.ok(201, a.call("POST", "/v1/merchants", op, "", map[string]any{"name": "m"}))
	u := a.ok(201, a.call("POST", "/v1/users", op, "", map[string]any{"name": "u"}))
	a.ok(201, a.call("POST", "/v1/topups", u.str("api_key"), "", map[string]any{"amount": 1_000_000, "currency": "USD"}))
	r := newReceiver(t)
	// Deliveries wait until every payment is made (however slow the
	// machine makes that), then take a second each: at the kill, one wave
	// has arrived, the next is in flight and the rest are queued.
	gate := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-gate:
		case <-req.Context().Done():
			return
		}
		time.Sleep(time.Second)
		r.srv.Config.Handler.ServeHTTP(w, req)
	}))
	t.Cleanup(slow.Close)
	a.ok(201, a.call("POST", "/v1/webhook_endpoints", mc.str("api_key"), "", map[string]any{"url": slow.URL, "events": []string{"*"}}))
	const n = 40
	var ids []string
	for i := range n {
		pay := a.ok(201, a.call("POST", "/v1/payments", u.str("api_key"), "", map[string]any{"amount": 100 + i, "currency": "USD", "merchant_id": mc.str("id")}))
		ids = append(ids, pay.str("id"))
	}
	close(gate)
	r.wait(t, "some deliveries before the kill", 20*time.Second, func(ds []delivery) bool { return len(ds) >= 5 })
	p.kill()
	time.Sleep(400 * time.Millisecond) // what was sent before the kill arrives
	atKill := len(r.deliveries())
	if atKill >= 2*n {
		t.Fatalf("all %d deliveries were sent before the kill; the test kills nothing queued", atKill)
	}
	p = startProcDB(t, bin, dir, db, "--webhook-allow-hosts", "127.0.0.1")
	restarted := time.Now()
	defer func() {
		t.Logf("%d of %d deliveries before the kill; the rest within %v of the restart", atKill, 2*n, time.Since(restarted))
	}()
	ds := r.wait(t, "every event after the kill", 90*time.Second, func(ds []delivery) bool {
		seen := map[string]bool{}
		for _, d := range ds {
			seen[d.event.ID] = true
		}
		return len(seen) >= 2*n
	})
	byWhat := map[string]map[string]bool{}
	for _, d := range ds {
		k := d.event.Type + " " + d.event.Data.Object["id"].(string)
		if byWhat[k] == nil {
			byWhat[k] = map[string]bool{}
		}
		byWhat[k][d.Headers["webhook-id"]] = true
	}
	for _, id := range ids {
		for _, typ := range []string{"payment.authorized", "payment.captured"} {
			if got := len(byWhat[typ+" "+id]); got != 1 {
				t.Errorf("%s of %s arrived under %d ids, want 1", typ, id, got)
			}
		}
	}
	_ = p
}
