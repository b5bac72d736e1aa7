package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/storetest"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tlog routes the server's log to t.Log.
type tlog struct{ t testing.TB }

func (w tlog) Write(b []byte) (int, error) { w.t.Log(strings.TrimSpace(string(b))); return len(b), nil }

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startMain runs the real server on 127.0.0.1:0 over dir.
func startMain(t testing.TB, dir string, configure func(*Main)) *Main {
	t.Helper()
	m := NewMain()
	m.Config.Addr, m.Config.DataDir = "127.0.0.1:0", dir
	m.Config.DB = storetest.Database(t, dir)
	m.Config.Sandbox = true // the tests top wallets up; TestSandboxOff turns it off
	m.Logger = slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m.Stdout, m.Stderr = tlog{t}, tlog{t}
	m.PanicOnInvariant = true
	if configure != nil {
		configure(m)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A burst of requests leaves connections the client dialed but
		// never used in its idle pool; the server's Shutdown waits 5s for
		// such a connection before it counts it idle (net/http), so close
		// them first.
		http.DefaultClient.CloseIdleConnections()
		m.Close()
	})
	return m
}

type api struct {
	t    testing.TB
	base string
	seq  atomic.Int64
}

type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }
func (r resp) num(k string) int64  { f, _ := r.body[k].(float64); return int64(f) }
func (r resp) errField(k string) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e[k].(string)
	return s
}

// call sends one request. body may be nil, a string (sent as is) or a value
// (sent as JSON), and goes as Content-Type: application/json. idem "" sends
// a fresh key on POST; "-" sends none.
func (a *api) call(method, path, key, idem string, body any) resp {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	switch {
	case method != "POST" || idem == "-":
		idem = ""
	case idem == "":
		idem = fmt.Sprintf("test-%d-%d", time.Now().UnixNano(), a.seq.Add(1))
	}
	r := a.send(method, path, key, idem, rd)
	_ = json.Unmarshal(r.raw, &r.body)
	return r
}

// send makes a request with key (none when "") and idem as its
// Idempotency-Key (none when ""), body (none when nil) as JSON, and
// returns the answer undecoded.
func (a *api) send(method, path, key, idem string, body io.Reader) resp {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, raw: raw}
}

func (a *api) ok(want int, r resp) resp {
	a.t.Helper()
	if r.status != want {
		a.t.Fatalf("status %d, want %d: %s", r.status, want, r.raw)
	}
	return r
}

type world struct {
	*api
	m                 *Main
	op                string
	user, userKey     string
	merch, merchKey   string
	merch2, merch2Key string
	agent, agentKey   string
}

// newWorld starts a server with a funded user (500.00 USD), two merchants
// and an agent of the user.
func newWorld(t testing.TB, configure func(*Main)) *world {
	m := startMain(t, t.TempDir(), configure)
	w := &world{api: &api{t: t, base: m.URL()}, m: m, op: m.OperatorKey}
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Ada"}))
	w.user, w.userKey = u.str("id"), u.str("api_key")
	mc := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Cafe", "category": "food"}))
	w.merch, w.merchKey = mc.str("id"), mc.str("api_key")
	mc2 := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Other"}))
	w.merch2, w.merch2Key = mc2.str("id"), mc2.str("api_key")
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "Shopper"}))
	w.agent, w.agentKey = ag.str("id"), ag.str("api_key")
	w.ok(201, w.call("POST", "/v1/topups", w.userKey, "", map[string]any{"amount": 50000, "currency": "USD"}))
	return w
}

func (w *world) balance(key, cur string) (available, pending int64) {
	w.t.Helper()
	r := w.ok(200, w.call("GET", "/v1/balance", key, "", nil))
	list, _ := r.body["balances"].([]any)
	for _, b := range list {
		m := b.(map[string]any)
		if m["currency"] == cur {
			return int64(m["available"].(float64)), int64(m["pending"].(float64))
		}
	}
	return 0, 0
}

func (w *world) verify() {
	w.t.Helper()
	r := w.ok(200, w.call("GET", "/v1/ledger/verify", w.op, "", nil))
	if r.body["ok"] != true {
		w.t.Fatalf("ledger verify: %s", r.raw)
	}
}

func TestHealthzAndOperatorKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := startMain(t, dir, nil)
	a := &api{t: t, base: m.URL()}
	a.ok(200, a.call("GET", "/healthz", "", "", nil))
	st, err := os.Stat(filepath.Join(dir, "operator.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("operator.key: %v %v", st, err)
	}
	key := m.OperatorKey
	u := a.ok(201, a.call("POST", "/v1/users", key, "", map[string]any{"name": "Bo"}))
	m.Close()
	// A restart keeps the key and the data.
	m2 := startMain(t, dir, nil)
	if m2.OperatorKey != key {
		t.Fatal("restart made a new operator key")
	}
	a2 := &api{t: t, base: m2.URL()}
	a2.ok(201, a2.call("POST", "/v1/topups", u.str("api_key"), "", map[string]any{"amount": 5, "currency": "EUR"}))
	// A key file others can read is refused.
	m2.Close()
	os.Chmod(filepath.Join(dir, "operator.key"), 0o644)
	m3 := NewMain()
	m3.Config.Addr, m3.Config.DataDir, m3.Stderr = "127.0.0.1:0", dir, io.Discard
	if err := m3.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	m3.Close()
}

func TestPaymentLifecycle(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	// Automatic capture.
	p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 1250, "currency": "USD",
		"merchant_id": w.merch, "description": "breakfast", "metadata": map[string]string{"order": "42"}}))
	if p.str("status") != "captured" || p.num("amount_captured") != 1250 || p.str("payer_id") != w.user || p.body["agent_id"] != nil {
		t.Fatalf("auto payment: %s", p.raw)
	}
	if !strings.HasPrefix(p.str("id"), "pay_") || p.str("created_at") == "" || p.str("capture_method") != "automatic" {
		t.Fatalf("payment shape: %s", p.raw)
	}
	// Manual capture, partial: the rest is released.
	hold := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 3000, "currency": "USD",
		"merchant_id": w.merch, "capture_method": "manual"}))
	if hold.str("status") != "authorized" || hold.body["agent_id"] != nil || hold.str("authorization_expires_at") == "" {
		t.Fatalf("manual payment: %s", hold.raw)
	}
	// An agent without a mandate: the payment waits for the user.
	ap := w.ok(201, w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch}))
	if ap.str("status") != "requires_confirmation" || ap.str("agent_id") != w.agent {
		t.Fatalf("agent payment: %s", ap.raw)
	}
	if av, pend := w.balance(w.userKey, "USD"); av != 50000-1250-3000 || pend != 3000 {
		t.Fatalf("during hold: available %d pending %d", av, pend)
	}
	c := w.ok(200, w.call("POST", "/v1/payments/"+hold.str("id")+"/capture", w.merchKey, "", map[string]any{"amount": 2000}))
	if c.str("status") != "captured" || c.num("amount_captured") != 2000 {
		t.Fatalf("capture: %s", c.raw)
	}
	if av, pend := w.balance(w.userKey, "USD"); av != 50000-1250-2000 || pend != 0 {
		t.Fatalf("after capture: available %d pending %d", av, pend)
	}
	// Refund partly, then the rest; never more than captured.
	r := w.ok(201, w.call("POST", "/v1/payments/"+hold.str("id")+"/refunds", w.merchKey, "", map[string]any{"amount": 500, "reason": "one item missing"}))
	if !strings.HasPrefix(r.str("id"), "re_") || r.str("payment_id") != hold.str("id") || r.num("amount") != 500 || r.str("status") != "succeeded" {
		t.Fatalf("refund: %s", r.raw)
	}
	over := w.call("POST", "/v1/payments/"+hold.str("id")+"/refunds", w.merchKey, "", map[string]any{"amount": 1501})
	if over.status != 400 || over.errField("code") != "amount_too_large" || over.errField("param") != "amount" {
		t.Fatalf("over-refund: %d %s", over.status, over.raw)
	}
	w.ok(201, w.call("POST", "/v1/payments/"+hold.str("id")+"/refunds", w.merchKey, "", map[string]any{}))
	g := w.ok(200, w.call("GET", "/v1/payments/"+hold.str("id"), w.userKey, "", nil))
	if g.str("status") != "refunded" || g.num("amount_refunded") != 2000 {
		t.Fatalf("after refunds: %s", g.raw)
	}
	// Cancel by the payer.
	h2 := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 700, "currency": "USD", "merchant_id": w.merch, "capture_method": "manual"}))
	cn := w.ok(200, w.call("POST", "/v1/payments/"+h2.str("id")+"/cancel", w.userKey, "", nil))
	if cn.str("status") != "canceled" {
		t.Fatalf("cancel: %s", cn.raw)
	}
	if av, _ := w.balance(w.userKey, "USD"); av != 50000-1250 {
		t.Fatalf("after cancel: available %d", av)
	}
	if av, _ := w.balance(w.merchKey, "USD"); av != 1250 {
		t.Fatalf("merchant available %d", av)
	}
	// The agent sees only its own payments; the merchant sees its own.
	al := w.ok(200, w.call("GET", "/v1/payments", w.agentKey, "", nil))
	if data := al.body["data"].([]any); len(data) != 1 {
		t.Fatalf("agent list: %s", al.raw)
	}
	w.verify()
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	var ids []string
	for i := range 7 {
		p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 10 + i, "currency": "USD", "merchant_id": w.merch}))
		ids = append(ids, p.str("id"))
		time.Sleep(2 * time.Millisecond) // IDs order by millisecond
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		path := "/v1/payments?limit=3"
		if after != "" {
			path += "&starting_after=" + after
		}
		r := w.ok(200, w.call("GET", path, w.merchKey, "", nil))
		for _, d := range r.body["data"].([]any) {
			got = append(got, d.(map[string]any)["id"].(string))
		}
		if r.body["has_more"] != true {
			break
		}
		after = got[len(got)-1]
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(got) != 7 {
		t.Fatalf("listed %d payments; want 7", len(got))
	}
	for i := range got {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("order: got %v, want newest first of %v", got, ids)
		}
	}
	// Another merchant sees none of them.
	r := w.ok(200, w.call("GET", "/v1/payments", w.merch2Key, "", nil))
	if len(r.body["data"].([]any)) != 0 || r.body["has_more"] != false {
		t.Fatalf("other merchant's list: %s", r.raw)
	}
}

// TestBadInput sends every kind of bad request: each gets its precise 4xx
// and nothing changes.
func TestBadInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	hold := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 1000, "currency": "USD", "merchant_id": w.merch, "capture_method": "manual"}))
	pid := hold.str("id")
	paid := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 700, "currency": "USD", "merchant_id": w.merch})).str("id")
	dsp := w.ok(201, w.call("POST", "/v1/payments/"+paid+"/disputes", w.userKey, "", map[string]any{"reason": "other"})).str("id")
	pay := func(extra string) string {
		return `{"amount":100,"currency":"USD","merchant_id":"` + w.merch + `"` + extra + `}`
	}
	mandate := func(fields string) string {
		return `{"agent_id":"` + w.agent + `","currency":"USD",` + fields + `}`
	}
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	cases := []struct {
		name              string
		method, path, key string
		idem              string
		body              any
		status            int
		code, param       string
	}{
		{"malformed JSON", "POST", "/v1/payments", w.userKey, "", `{"amount":`, 400, "invalid_json", ""},
		{"not an object", "POST", "/v1/payments", w.userKey, "", `[1,2]`, 400, "invalid_json", ""},
		{"two objects", "POST", "/v1/payments", w.userKey, "", pay("") + pay(""), 400, "invalid_json", ""},
		{"unknown field", "POST", "/v1/payments", w.userKey, "", pay(`,"amout":5`), 400, "unknown_field", "amout"},
		// Bodies that another parser (a proxy, an agent-side check) could read
		// otherwise than Paybound.
		{"amount twice", "POST", "/v1/payments", w.userKey, "", `{"amount":1,"currency":"USD","merchant_id":"` + w.merch + `","amount":250}`, 400, "invalid_json", "amount"},
		{"amount twice, once escaped", "POST", "/v1/payments", w.userKey, "", pay(`,"\u0061mount":250`), 400, "invalid_json", "amount"},
		{"merchant_id in capitals", "POST", "/v1/payments", w.userKey, "", `{"amount":100,"currency":"USD","MERCHANT_ID":"` + w.merch + `"}`, 400, "unknown_field", "MERCHANT_ID"},
		{"metadata key twice", "POST", "/v1/payments", w.userKey, "", pay(`,"metadata":{"a":"1","a":"2"}`), 400, "invalid_json", "metadata.a"},
		{"description not UTF-8", "POST", "/v1/payments", w.userKey, "", pay(",\"description\":\"caf\xe9\""), 400, "invalid_json", "description"},
		{"description unpaired surrogate", "POST", "/v1/payments", w.userKey, "", pay(`,"description":"\ud83d"`), 400, "invalid_json", "description"},
		{"mandate max_amount twice", "POST", "/v1/mandates", w.userKey, "", mandate(`"max_amount":1,"budget":{"amount":1000,"period":"week"},"max_amount":5000`), 400, "invalid_json", "max_amount"},
		{"mandate budget amount twice", "POST", "/v1/mandates", w.userKey, "", mandate(`"max_amount":100,"budget":{"amount":100,"period":"week","amount":50000}`), 400, "invalid_json", "budget.amount"},
		{"mandate schedule key in capitals", "POST", "/v1/mandates", w.userKey, "", mandate(`"max_amount":100,"budget":{"amount":1000,"period":"week"},"schedule":{"Days":["sat"],"start":"00:00","end":"23:59","time_zone":"UTC"}`), 400, "unknown_field", "schedule.Days"},
		{"refund amount twice", "POST", "/v1/payments/" + paid + "/refunds", w.merchKey, "", `{"amount":1,"amount":700}`, 400, "invalid_json", "amount"},
		{"dispute reason twice", "POST", "/v1/payments/" + paid + "/disputes", w.userKey, "", `{"reason":"other","reason":"unauthorized"}`, 400, "invalid_json", "reason"},
		{"amount 0", "POST", "/v1/payments", w.userKey, "", `{"amount":0,"currency":"USD","merchant_id":"` + w.merch + `"}`, 400, "invalid_amount", "amount"},
		{"amount negative", "POST", "/v1/payments", w.userKey, "", `{"amount":-5,"currency":"USD","merchant_id":"` + w.merch + `"}`, 400, "invalid_amount", "amount"},
		{"amount 10^16", "POST", "/v1/payments", w.userKey, "", `{"amount":10000000000000000,"currency":"USD","merchant_id":"` + w.merch + `"}`, 400, "invalid_amount", "amount"},
		{"amount 10^20", "POST", "/v1/payments", w.userKey, "", `{"amount":100000000000000000000,"currency":"USD","merchant_id":"` + w.merch + `"}`, 400, "invalid_amount", "amount"},
		{"amount float", "POST", "/v1/payments", w.userKey, "", `{"amount":1.5,"currency":"USD","merchant_id":"` + w.merch + `"}`, 400, "invalid_amount", "amount"},
		{"amount string", "POST", "/v1/payments", w.userKey, "", `{"amount":"100","currency":"USD","merchant_id":"` + w.merch + `"}`, 400, "invalid_amount", "amount"},
		{"amount missing", "POST", "/v1/payments", w.userKey, "", `{"currency":"USD","merchant_id":"` + w.merch + `"}`, 400, "parameter_missing", "amount"},
		{"currency lower", "POST", "/v1/payments", w.userKey, "", `{"amount":100,"currency":"usd","merchant_id":"` + w.merch + `"}`, 400, "invalid_currency", "currency"},
		{"currency unknown", "POST", "/v1/payments", w.userKey, "", `{"amount":100,"currency":"XYZ","merchant_id":"` + w.merch + `"}`, 400, "invalid_currency", "currency"},
		{"currency missing", "POST", "/v1/payments", w.userKey, "", `{"amount":100,"merchant_id":"` + w.merch + `"}`, 400, "parameter_missing", "currency"},
		{"merchant missing", "POST", "/v1/payments", w.userKey, "", `{"amount":100,"currency":"USD"}`, 400, "parameter_missing", "merchant_id"},
		{"merchant malformed", "POST", "/v1/payments", w.userKey, "", `{"amount":100,"currency":"USD","merchant_id":"shop"}`, 400, "parameter_invalid", "merchant_id"},
		{"capture method", "POST", "/v1/payments", w.userKey, "", pay(`,"capture_method":"later"`), 400, "parameter_invalid", "capture_method"},
		{"mandate on a user payment", "POST", "/v1/payments", w.userKey, "", pay(`,"mandate_id":"mdt_00000000000000000000000000"`), 400, "parameter_invalid", "mandate_id"},
		{"mandate id malformed", "POST", "/v1/payments", w.agentKey, "", pay(`,"mandate_id":"mdt_x"`), 400, "parameter_invalid", "mandate_id"},
		{"expiry not a time", "POST", "/v1/payments", w.userKey, "", pay(`,"capture_method":"manual","authorization_expires_at":"tomorrow"`), 400, "parameter_invalid", "authorization_expires_at"},
		{"expiry too far", "POST", "/v1/payments", w.userKey, "", pay(`,"capture_method":"manual","authorization_expires_at":"2099-01-01T00:00:00Z"`), 400, "parameter_invalid", "authorization_expires_at"},
		{"metadata too many", "POST", "/v1/payments", w.userKey, "", pay(`,"metadata":{` + manyKeys(21) + `}`), 400, "parameter_invalid", "metadata"},
		{"metadata names a link", "POST", "/v1/payments", w.userKey, "", pay(`,"metadata":{"payment_link":"plink_x"}`), 400, "parameter_invalid", "metadata.payment_link"},
		{"metadata names a session", "POST", "/v1/payments", w.agentKey, "", pay(`,"metadata":{"order":"1","checkout_session_id":"cs_x"}`), 400, "parameter_invalid", "metadata.checkout_session_id"},
		{"body over 1 MiB", "POST", "/v1/users", w.op, "", big, 400, "body_too_large", ""},
		{"body of 700 KB, read whole", "POST", "/v1/users", w.op, "", `{"name":"` + strings.Repeat("x", 700<<10) + `"}`, 400, "parameter_invalid", "name"},
		{"no idempotency key", "POST", "/v1/payments", w.userKey, "-", pay(""), 400, "idempotency_key_required", "Idempotency-Key"},
		{"idempotency key too long", "POST", "/v1/payments", w.userKey, strings.Repeat("k", 256), pay(""), 400, "idempotency_key_invalid", "Idempotency-Key"},
		{"no credentials", "POST", "/v1/payments", "", "", pay(""), 401, "unauthenticated", ""},
		{"wrong key", "POST", "/v1/payments", "pbk_usr_nosuchkey", "", pay(""), 401, "unauthenticated", ""},
		{"garbage key", "GET", "/v1/balance", "x", "", nil, 401, "unauthenticated", ""},
		{"merchant pays", "POST", "/v1/payments", w.merchKey, "", pay(""), 403, "forbidden", ""},
		{"user creates user", "POST", "/v1/users", w.userKey, "", `{"name":"x"}`, 403, "forbidden", ""},
		{"agent creates agent", "POST", "/v1/agents", w.agentKey, "", `{"name":"x"}`, 403, "forbidden", ""},
		{"user captures", "POST", "/v1/payments/" + pid + "/capture", w.userKey, "", nil, 403, "forbidden", ""},
		{"user refunds", "POST", "/v1/payments/" + pid + "/refunds", w.userKey, "", nil, 403, "forbidden", ""},
		{"operator tops up", "POST", "/v1/topups", w.op, "", `{"amount":1,"currency":"USD"}`, 403, "forbidden", ""},
		{"agent tops up", "POST", "/v1/topups", w.agentKey, "", `{"amount":1,"currency":"USD"}`, 403, "forbidden", ""},
		{"user verifies ledger", "GET", "/v1/ledger/verify", w.userKey, "", nil, 403, "forbidden", ""},
		{"other merchant gets", "GET", "/v1/payments/" + pid, w.merch2Key, "", nil, 404, "resource_missing", "id"},
		{"other merchant captures", "POST", "/v1/payments/" + pid + "/capture", w.merch2Key, "", nil, 404, "resource_missing", "id"},
		{"other merchant cancels", "POST", "/v1/payments/" + pid + "/cancel", w.merch2Key, "", nil, 404, "resource_missing", "id"},
		{"unknown payment", "GET", "/v1/payments/pay_00000000000000000000000000", w.userKey, "", nil, 404, "resource_missing", "id"},
		{"malformed payment id", "POST", "/v1/payments/nope/capture", w.merchKey, "", nil, 404, "resource_missing", "id"},
		{"capture too much", "POST", "/v1/payments/" + pid + "/capture", w.merchKey, "", `{"amount":1001}`, 400, "amount_too_large", "amount"},
		{"capture zero", "POST", "/v1/payments/" + pid + "/capture", w.merchKey, "", `{"amount":0}`, 400, "invalid_amount", "amount"},
		{"refund uncaptured", "POST", "/v1/payments/" + pid + "/refunds", w.merchKey, "", `{"amount":1}`, 409, "payment_unexpected_state", ""},
		{"refund reason too long", "POST", "/v1/payments/" + pid + "/refunds", w.merchKey, "", `{"reason":"` + strings.Repeat("r", 501) + `"}`, 400, "parameter_invalid", "reason"},
		{"cancel with unknown field", "POST", "/v1/payments/" + pid + "/cancel", w.merchKey, "", `{"now":true}`, 400, "unknown_field", "now"},
		{"topup amount 0", "POST", "/v1/topups", w.userKey, "", `{"amount":0,"currency":"USD"}`, 400, "invalid_amount", "amount"},
		{"topup 10^16", "POST", "/v1/topups", w.userKey, "", `{"amount":10000000000000000,"currency":"USD"}`, 400, "invalid_amount", "amount"},
		{"topup currency", "POST", "/v1/topups", w.userKey, "", `{"amount":5,"currency":"DOLLARS"}`, 400, "invalid_currency", "currency"},
		{"user name missing", "POST", "/v1/users", w.op, "", `{}`, 400, "parameter_missing", "name"},
		{"user name too long", "POST", "/v1/users", w.op, "", `{"name":"` + strings.Repeat("n", 201) + `"}`, 400, "parameter_invalid", "name"},
		{"agent key not a JWK", "POST", "/v1/agents", w.userKey, "", `{"name":"a","public_key":{"kty":"RSA"}}`, 400, "parameter_invalid", "public_key"},
		{"limit 0", "GET", "/v1/payments?limit=0", w.userKey, "", nil, 400, "parameter_invalid", "limit"},
		{"limit 101", "GET", "/v1/payments?limit=101", w.userKey, "", nil, 400, "parameter_invalid", "limit"},
		{"bad cursor", "GET", "/v1/payments?starting_after=x", w.userKey, "", nil, 400, "parameter_invalid", "starting_after"},
		{"dispute without reason", "POST", "/v1/payments/" + pid + "/disputes", w.userKey, "", `{}`, 400, "parameter_missing", "reason"},
		{"dispute reason unknown", "POST", "/v1/payments/" + paid + "/disputes", w.userKey, "", `{"reason":"fraud"}`, 400, "parameter_invalid", "reason"},
		{"dispute details too long", "POST", "/v1/payments/" + paid + "/disputes", w.userKey, "", `{"reason":"other","details":"` + strings.Repeat("d", 2001) + `"}`, 400, "parameter_invalid", "details"},
		{"dispute uncaptured", "POST", "/v1/payments/" + pid + "/disputes", w.userKey, "", `{"reason":"other"}`, 409, "payment_unexpected_state", ""},
		{"dispute twice", "POST", "/v1/payments/" + paid + "/disputes", w.userKey, "", `{"reason":"other"}`, 409, "dispute_unexpected_state", ""},
		{"merchant disputes", "POST", "/v1/payments/" + paid + "/disputes", w.merchKey, "", `{"reason":"other"}`, 403, "forbidden", ""},
		{"agent lists disputes", "GET", "/v1/disputes", w.agentKey, "", nil, 403, "forbidden", ""},
		{"dispute status unknown", "GET", "/v1/disputes?status=closed", w.userKey, "", nil, 400, "parameter_invalid", "status"},
		{"other merchant's dispute", "GET", "/v1/disputes/" + dsp, w.merch2Key, "", nil, 404, "resource_missing", "id"},
		{"user resolves", "POST", "/v1/disputes/" + dsp + "/resolve", w.userKey, "", `{"outcome":"reject","liable_party":"user"}`, 403, "forbidden", ""},
		{"resolve without outcome", "POST", "/v1/disputes/" + dsp + "/resolve", w.op, "", `{"liable_party":"user"}`, 400, "parameter_missing", "outcome"},
		{"resolve without liable party", "POST", "/v1/disputes/" + dsp + "/resolve", w.op, "", `{"outcome":"reject"}`, 400, "parameter_missing", "liable_party"},
		{"resolve outcome unknown", "POST", "/v1/disputes/" + dsp + "/resolve", w.op, "", `{"outcome":"refund","liable_party":"merchant"}`, 400, "parameter_invalid", "outcome"},
		{"partial refund without amount", "POST", "/v1/disputes/" + dsp + "/resolve", w.op, "", `{"outcome":"refund_partial","liable_party":"merchant"}`, 400, "parameter_missing", "amount"},
		{"partial refund too large", "POST", "/v1/disputes/" + dsp + "/resolve", w.op, "", `{"outcome":"refund_partial","amount":701,"liable_party":"merchant"}`, 400, "amount_too_large", "amount"},
		{"user refunded by themselves", "POST", "/v1/disputes/" + dsp + "/resolve", w.op, "", `{"outcome":"refund_full","liable_party":"user"}`, 400, "parameter_invalid", "liable_party"},
		{"unknown dispute", "POST", "/v1/disputes/dsp_00000000000000000000000000/resolve", w.op, "", `{"outcome":"reject","liable_party":"user"}`, 404, "resource_missing", "id"},
		{"log entry not a number", "GET", "/v1/log/entries/first", w.op, "", nil, 400, "parameter_invalid", "index"},
		{"log entry past the end", "GET", "/v1/log/entries/100000", w.op, "", nil, 404, "resource_missing", "index"},
		{"log entry of another's payment", "GET", "/v1/log/entries/0", w.merch2Key, "", nil, 404, "resource_missing", "index"},
		{"inclusion proof without size", "GET", "/v1/log/proof/inclusion?index=0", "", "", nil, 400, "parameter_missing", "size"},
		{"consistency proof backwards", "GET", "/v1/log/proof/consistency?old=2&new=1", "", "", nil, 400, "parameter_invalid", "old"},
		{"tile not a path", "GET", "/v1/log/tile/0/1", "", "", nil, 404, "resource_missing", ""},
		{"tile past the tree", "GET", "/v1/log/tile/0/005", "", "", nil, 404, "resource_missing", ""},
		{"entry bundle without a key", "GET", "/v1/log/tile/entries/000.p/1", "", "", nil, 401, "unauthenticated", ""},
		{"entry bundle for a user", "GET", "/v1/log/tile/entries/000.p/1", w.userKey, "", nil, 403, "forbidden", ""},
		{"trace of another's payment", "GET", "/v1/payments/" + pid + "/trace", w.merch2Key, "", nil, 404, "resource_missing", "id"},
		{"unknown route", "GET", "/v1/nothing", w.userKey, "", nil, 404, "route_not_found", ""},
		{"wrong method", "DELETE", "/v1/payments", w.userKey, "", nil, 405, "method_not_allowed", ""},
	}
	before := snapshot(w)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.api.t = t
			r := w.call(c.method, c.path, c.key, c.idem, c.body)
			if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param {
				t.Fatalf("got %d %s (param %q); want %d %s (param %q): %.300s", r.status, r.errField("code"), r.errField("param"), c.status, c.code, c.param, r.raw)
			}
			if r.errField("type") == "" || r.errField("message") == "" || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("error lacks type or message: %s", r.raw)
			}
		})
	}
	// Headers that another server or proxy could read otherwise.
	for _, c := range []struct {
		name        string
		header      http.Header
		status      int
		code, param string
	}{
		{"form body (curl -d without a Content-Type)", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 415, "unsupported_media_type", "Content-Type"},
		{"text/plain body", http.Header{"Content-Type": {"text/plain"}}, 415, "unsupported_media_type", "Content-Type"},
		{"body without a Content-Type", http.Header{"Content-Type": nil}, 415, "unsupported_media_type", "Content-Type"},
		{"two Content-Types", http.Header{"Content-Type": {"application/json", "text/plain"}}, 415, "unsupported_media_type", "Content-Type"},
		{"two bearer keys", http.Header{"Authorization": {"Bearer " + w.userKey, "Bearer " + w.merchKey}}, 400, "parameter_invalid", "Authorization"},
		{"two idempotency keys", http.Header{"Idempotency-Key": {"one", "two"}}, 400, "idempotency_key_invalid", "Idempotency-Key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", w.base+"/v1/payments", strings.NewReader(pay("")))
			req.Header.Set("Authorization", "Bearer "+w.userKey)
			req.Header.Set("Idempotency-Key", "headers-"+c.name)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range c.header {
				req.Header[k] = v
			}
			r := send(t, req)
			if r.status != c.status || r.errField("code") != c.code || r.errField("param") != c.param || r.errField("message") == "" {
				t.Fatalf("got %d %s (param %q); want %d %s (param %q): %s", r.status, r.errField("code"), r.errField("param"), c.status, c.code, c.param, r.raw)
			}
		})
	}
	w.api.t = t
	if after := snapshot(w); after != before {
		t.Fatalf("bad requests changed state:\nbefore %s\nafter  %s", before, after)
	}
	w.verify()
}

func manyKeys(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"k%d":"v"`, i))
	}
	return strings.Join(parts, ",")
}

// snapshot is every balance and payment the world's parties can see.
func snapshot(w *world) string {
	var b strings.Builder
	for _, key := range []string{w.userKey, w.merchKey, w.merch2Key} {
		b.Write(w.ok(200, w.call("GET", "/v1/balance", key, "", nil)).raw)
	}
	b.Write(w.ok(200, w.call("GET", "/v1/payments?limit=100", w.op, "", nil)).raw)
	b.Write(w.ok(200, w.call("GET", "/v1/disputes?limit=100", w.op, "", nil)).raw)
	b.Write(w.ok(200, w.call("GET", "/v1/mandates?limit=100", w.userKey, "", nil)).raw)
	b.Write(w.ok(200, w.call("GET", "/v1/log/checkpoint", "", "", nil)).raw) // no entry was logged either
	return b.String()
}

func TestDeclineIsRecorded(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, c := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"amount": 50001, "currency": "USD", "merchant_id": w.merch}, "insufficient_funds"},
		{map[string]any{"amount": 1, "currency": "EUR", "merchant_id": w.merch}, "currency_mismatch"},
		{map[string]any{"amount": 1, "currency": "USD", "merchant_id": "mch_00000000000000000000000000"}, "merchant_unknown"},
	} {
		r := w.call("POST", "/v1/payments", w.userKey, "", c.body)
		if r.status != 402 || r.errField("type") != "payment_declined" || r.errField("code") != c.code || r.errField("payment_id") == "" {
			t.Fatalf("decline: %d %s", r.status, r.raw)
		}
		g := w.ok(200, w.call("GET", "/v1/payments/"+r.errField("payment_id"), w.userKey, "", nil))
		if g.str("status") != "declined" || g.str("decline_code") != c.code {
			t.Fatalf("declined payment: %s", g.raw)
		}
	}
	if av, _ := w.balance(w.userKey, "USD"); av != 50000 {
		t.Fatalf("declines moved money: %d", av)
	}
	w.verify()
}

func TestIdempotencyOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	body := map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch}
	first := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "order-1", body))
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Fatal("first response marked replayed")
	}
	// Same key, same body (other field order and spacing): the same bytes.
	again := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "order-1", `{ "merchant_id": "`+w.merch+`", "currency": "USD", "amount": 100 }`))
	if !bytes.Equal(again.raw, first.raw) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay differs:\n%s\n%s", first.raw, again.raw)
	}
	// Same key, other body: 422.
	other := w.call("POST", "/v1/payments", w.userKey, "order-1", map[string]any{"amount": 101, "currency": "USD", "merchant_id": w.merch})
	if other.status != 422 || other.errField("code") != "idempotency_conflict" {
		t.Fatalf("conflict: %d %s", other.status, other.raw)
	}
	// The same key on another route is another request: 422 too.
	if r := w.call("POST", "/v1/topups", w.userKey, "order-1", map[string]any{"amount": 100, "currency": "USD"}); r.status != 422 {
		t.Fatalf("key reused on another route: %d %s", r.status, r.raw)
	}
	// Concurrent duplicates: one payment, every answer is it or a 409.
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := w.call("POST", "/v1/payments", w.userKey, "order-2", body)
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case 201:
				seen[r.str("id")]++
			case 409:
				if r.header.Get("Retry-After") == "" || r.errField("code") != "idempotency_in_flight" {
					t.Errorf("409 without Retry-After: %s", r.raw)
				}
			default:
				t.Errorf("concurrent duplicate: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	if len(seen) != 1 {
		t.Fatalf("concurrent duplicates made %d payments: %v", len(seen), seen)
	}
	if av, _ := w.balance(w.userKey, "USD"); av != 50000-200 {
		t.Fatalf("available %d; want two payments of 1.00", av)
	}
}

func TestHoldExpiry(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	exp := clock.Now().Add(2 * time.Minute).Format(time.RFC3339)
	p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 900, "currency": "USD",
		"merchant_id": w.merch, "capture_method": "manual", "authorization_expires_at": exp}))
	if p.str("authorization_expires_at") != exp {
		t.Fatalf("expires_at %q; want %q", p.str("authorization_expires_at"), exp)
	}
	clock.Advance(3 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := w.ok(200, w.call("GET", "/v1/payments/"+p.str("id"), w.userKey, "", nil))
		if g.str("status") == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold not expired by the sweeper: %s", g.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if av, pend := w.balance(w.userKey, "USD"); av != 50000 || pend != 0 {
		t.Fatalf("after expiry: available %d, pending %d", av, pend)
	}
	r := w.call("POST", "/v1/payments/"+p.str("id")+"/capture", w.merchKey, "", nil)
	if r.status != 409 {
		t.Fatalf("capture of expired hold: %d %s", r.status, r.raw)
	}
	w.verify()
}

func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	m := startMain(t, dir, func(m *Main) { m.Config.Demo = true; m.Stdout = &out })
	var d demoFile
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil || json.Unmarshal(b, &d) != nil || !strings.Contains(out.String(), d.UserKey) ||
		!strings.Contains(out.String(), "Demo seeded") || !strings.Contains(out.String(), "(1000.00 CNY and 1000.00 USD available in the wallet)") {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	a := &api{t: t, base: m.URL()}
	p := a.ok(201, a.call("POST", "/v1/payments", d.UserKey, "", map[string]any{"amount": 450, "currency": "CNY", "merchant_id": d.MerchantID}))
	if p.str("payer_id") != d.UserID || p.str("status") != "captured" {
		t.Fatalf("demo payment: %s", p.raw)
	}
	if ap := a.ok(201, a.call("POST", "/v1/payments", d.AgentKey, "", map[string]any{"amount": 1, "currency": "CNY", "merchant_id": d.MerchantID})); ap.str("payer_id") != d.UserID {
		t.Fatalf("demo agent payment: %s", ap.raw)
	}
	m.Close()
	// A second start with --demo prints the same keys and seeds nothing new.
	out.Reset()
	m2 := startMain(t, dir, func(m *Main) { m.Config.Demo = true; m.Stdout = &out })
	if !strings.Contains(out.String(), d.UserKey) || strings.Contains(out.String(), "Demo seeded") ||
		!strings.Contains(out.String(), "nothing seeded again") || !strings.Contains(out.String(), "(995.50 CNY and 1000.00 USD available") {
		t.Fatalf("restart demo output: %s", out.String())
	}
	a2 := &api{t: t, base: m2.URL()}
	r := a2.ok(200, a2.call("GET", "/v1/balance", d.UserKey, "", nil))
	if !strings.Contains(string(r.raw), `"available":99550`) {
		t.Fatalf("demo balance after restart: %s", r.raw)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--addr", "nonsense"}, nil, "addr"},
		{[]string{"--fee-bps", "20000"}, nil, "fee-bps"},
		{[]string{"--db", "mysql://localhost/x"}, nil, "postgres://"},
		{nil, map[string]string{"PAYBOUND_FEE_BPS": "abc"}, "PAYBOUND_FEE_BPS"},
		{nil, map[string]string{"PAYBOUND_REQUIRE_SIGNATURES": "sometimes"}, "PAYBOUND_REQUIRE_SIGNATURES"},
		{[]string{"--passkey-rp-id", "https://pay.example.com"}, nil, "passkey-rp-id"},
		{[]string{"--passkey-origin", "pay.example.com"}, nil, "passkey-origin"},
		{nil, map[string]string{"PAYBOUND_PASSKEY_ORIGIN": "https://pay.example.com/app"}, "passkey-origin"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"extra"}, nil, "no arguments"},
	} {
		m := NewMain()
		m.Stderr = io.Discard
		err := m.ParseFlags(c.args, func(k string) string { return c.env[k] })
		if err == nil {
			err = m.Config.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v; want one naming %q", c.args, c.env, err, c.want)
		}
	}
	m := NewMain()
	if err := m.ParseFlags(nil, func(k string) string {
		return map[string]string{"PAYBOUND_ADDR": "127.0.0.1:9", "PAYBOUND_DATA": "/tmp/x", "PAYBOUND_DEMO": "true"}[k]
	}); err != nil || m.Config.Addr != "127.0.0.1:9" || m.Config.DataDir != "/tmp/x" || !m.Config.Demo {
		t.Fatalf("env config: %+v %v", m.Config, err)
	}
}

// TestNewKeysAreNotStoredInTheClear: the idempotency record of a call that
// creates an API key is sealed, yet a retry returns the key.
func TestNewKeysAreNotStoredInTheClear(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	first := w.ok(201, w.call("POST", "/v1/users", w.op, "new-user-1", map[string]any{"name": "Cy"}))
	key := first.str("api_key")
	again := w.ok(201, w.call("POST", "/v1/users", w.op, "new-user-1", map[string]any{"name": "Cy"}))
	if !bytes.Equal(first.raw, again.raw) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay differs:\n%s\n%s", first.raw, again.raw)
	}
	recs, err := w.m.Service.Store().LookupIdempotency(context.Background(), []pb.IdempotencyKey{{Caller: "operator", Key: "new-user-1"}})
	if err != nil || len(recs) != 1 {
		t.Fatalf("record: %v %v", recs, err)
	}
	if bytes.Contains(recs[0].Body, []byte(key)) || bytes.Contains(recs[0].Body, []byte("pbk_")) {
		t.Fatalf("the stored response holds the API key in the clear: %s", recs[0].Body)
	}
	// Responses without secrets stay readable as stored.
	w.ok(201, w.call("POST", "/v1/topups", w.userKey, "plain-1", map[string]any{"amount": 1, "currency": "USD"}))
	recs, _ = w.m.Service.Store().LookupIdempotency(context.Background(), []pb.IdempotencyKey{{Caller: w.user, Key: "plain-1"}})
	if len(recs) != 1 || !bytes.Contains(recs[0].Body, []byte(`"object":"topup"`)) {
		t.Fatalf("plain record: %v", recs)
	}
}

// TestBadDatabaseFailsCleanly: a database that cannot be opened is an
// error from Run, and Close after it is safe (it crashed on a nil store).
func TestBadDatabaseFailsCleanly(t *testing.T) {
	t.Parallel()
	m := NewMain()
	m.Config.Addr, m.Config.DataDir = "127.0.0.1:0", t.TempDir()
	m.Config.DB = filepath.Join(t.TempDir(), "missing-dir", "x.db")
	m.Stdout, m.Stderr = io.Discard, io.Discard
	if err := m.Run(t.Context()); err == nil {
		t.Fatal("Run on a database in a missing directory succeeded")
	}
	m.Close()
}
