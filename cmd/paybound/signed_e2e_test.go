package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpsig"
)

type signer struct {
	key   ed25519.PrivateKey
	keyid string
}

func newSigner(t *testing.T) (*signer, string) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	jwk := `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	_, keyid, err := pb.ParseEd25519JWK([]byte(jwk))
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: priv, keyid: keyid}, jwk
}

// signed builds a request signed as the Web Bot Auth profile asks;
// mutate may change it after signing.
func (s *signer) signed(t *testing.T, method, url string, body []byte, idem string, created time.Time, components []string) *http.Request {
	r, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if len(body) > 0 {
		r.Header.Set("Content-Digest", httpsig.ContentDigest(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if idem != "" {
		r.Header.Set("Idempotency-Key", idem)
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	if components == nil {
		components = []string{"@method", "@authority", "@path"}
		if len(body) > 0 {
			components = append(components, "content-digest")
		}
		if idem != "" {
			components = append(components, "idempotency-key")
		}
	}
	if err := httpsig.Sign(r, "http", "sig1", httpsig.Params{Components: components, Created: created,
		Expires: created.Add(time.Minute), Nonce: base64.StdEncoding.EncodeToString(nonce), KeyID: s.keyid,
		Alg: "ed25519", Tag: "web-bot-auth"}, s.key); err != nil {
		t.Fatal(err)
	}
	return r
}

func send(t *testing.T, r *http.Request) resp {
	t.Helper()
	if r.GetBody != nil {
		r.Body, _ = r.GetBody()
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, raw: raw}
	json.Unmarshal(raw, &out.body)
	return out
}

// signedWorld sets the server at base up for signed payments, with its
// operator key op: a user with 10,000 USD, a merchant, and an agent of
// the user's with a key of its own (sg).
func signedWorld(t *testing.T, base, op string) (w *world, merchant resp, sg *signer, agent resp) {
	w = &world{api: &api{t: t, base: base}, op: op}
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Ada"}))
	w.userKey = u.str("api_key")
	merchant = w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Cafe"}))
	w.ok(201, w.call("POST", "/v1/topups", w.userKey, "", map[string]any{"amount": 10000, "currency": "USD"}))
	sg, jwk := newSigner(t)
	agent = w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "signer", "public_key": json.RawMessage(jwk)}))
	return w, merchant, sg, agent
}

// sendAtOnce sends every request at once, each on a goroutine of its own,
// and counts their outcomes (paymentOutcome).
func sendAtOnce(t *testing.T, reqs []*http.Request) map[string]int {
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Go(func() {
			o := paymentOutcome(send(t, r))
			mu.Lock()
			got[o]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// TestSignedAgentRequests: an agent with a registered key pays with signed
// requests and no bearer key; every kind of bad signature is refused with
// its code, and a replay is refused even after a restart.
func TestSignedAgentRequests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := startMain(t, dir, nil)
	w, mc, sg, ag := signedWorld(t, m.URL(), m.OperatorKey)
	if ag.str("keyid") != sg.keyid {
		t.Fatalf("keyid %q, want %q", ag.str("keyid"), sg.keyid)
	}
	body := []byte(`{"amount":100,"currency":"USD","merchant_id":"` + mc.str("id") + `"}`)
	url := m.URL() + "/v1/payments"
	ok := send(t, sg.signed(t, "POST", url, body, "s-1", time.Now(), nil))
	if ok.status != 201 || ok.str("agent_id") != ag.str("id") {
		t.Fatalf("signed payment: %d %s", ok.status, ok.raw)
	}
	replay := sg.signed(t, "POST", url, body, "s-2", time.Now(), nil)
	send(t, replay)
	if r := send(t, replay); r.status != 401 || r.errField("code") != "signature_replayed" {
		t.Fatalf("replay: %d %s", r.status, r.raw)
	}
	other, _ := newSigner(t)
	cases := []struct {
		name string
		req  func() *http.Request
		code string
	}{
		{"body changed", func() *http.Request {
			r := sg.signed(t, "POST", url, body, "s-3", time.Now(), nil)
			b := bytes.Replace(body, []byte("100"), []byte("999"), 1)
			r.Body, r.GetBody, r.ContentLength = io.NopCloser(bytes.NewReader(b)), nil, int64(len(b))
			return r
		}, "digest_mismatch"},
		{"covered field changed", func() *http.Request {
			r := sg.signed(t, "POST", url, body, "s-4", time.Now(), nil)
			r.Header.Set("Idempotency-Key", "s-4b")
			return r
		}, "signature_invalid"},
		{"digest not covered", func() *http.Request {
			return sg.signed(t, "POST", url, body, "s-5", time.Now(), []string{"@method", "@authority", "@path", "idempotency-key"})
		}, "signature_invalid"},
		{"too old", func() *http.Request {
			return sg.signed(t, "POST", url, body, "s-6", time.Now().Add(-10*time.Minute), nil)
		}, "signature_expired"},
		{"from the future", func() *http.Request {
			return sg.signed(t, "POST", url, body, "s-7", time.Now().Add(5*time.Minute), nil)
		}, "signature_expired"},
		{"unknown key", func() *http.Request { return other.signed(t, "POST", url, body, "s-8", time.Now(), nil) }, "signature_invalid"},
		{"garbage", func() *http.Request {
			r := sg.signed(t, "POST", url, body, "s-9", time.Now(), nil)
			r.Header.Set("Signature-Input", `sig1=(`)
			return r
		}, "signature_invalid"},
	}
	for _, c := range cases {
		if r := send(t, c.req()); r.status != 401 || r.errField("code") != c.code {
			t.Errorf("%s: %d %s; want 401 %s", c.name, r.status, r.raw, c.code)
		}
	}
	if ok.str("assurance") != "signed" {
		t.Fatalf("assurance: %s", ok.raw)
	}
	// A mandate that demands signatures refuses the agent's bearer key.
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": ag.str("id"), "description": "signed only",
		"currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000}, "require_signature": true}))
	mbody := []byte(`{"amount":100,"currency":"USD","merchant_id":"` + mc.str("id") + `","mandate_id":"` + mdt.str("id") + `"}`)
	if r := w.call("POST", "/v1/payments", ag.str("api_key"), "", json.RawMessage(mbody)); r.status != 401 || r.errField("code") != "signature_required" {
		t.Fatalf("bearer under a signatures-only mandate: %d %s", r.status, r.raw)
	}
	if r := send(t, sg.signed(t, "POST", url, mbody, "s-m", time.Now(), nil)); r.status != 201 || r.str("status") != "captured" || r.str("assurance") != "signed" {
		t.Fatalf("signed under the mandate: %d %s", r.status, r.raw)
	}
	// A signed GET.
	if r := send(t, sg.signed(t, "GET", m.URL()+"/v1/payments/"+ok.str("id"), nil, "", time.Now(), nil)); r.status != 200 {
		t.Fatalf("signed GET: %d %s", r.status, r.raw)
	}
	// After a restart, the replay is still refused.
	addr := m.Addr()
	m.Close()
	m2 := startMain(t, dir, func(m *Main) { m.Config.Addr = addr }) // the same authority, so the signature still verifies
	if r := send(t, replay); r.status != 401 || r.errField("code") != "signature_replayed" {
		t.Fatalf("replay after restart: %d %s", r.status, r.raw)
	}
	// Nothing but the three payments happened.
	a2 := &api{t: t, base: m2.URL()}
	l := a2.ok(200, a2.call("GET", "/v1/payments", w.userKey, "", nil))
	if n := len(l.body["data"].([]any)); n != 3 {
		t.Fatalf("%d payments; want 3", n)
	}
}

// TestSignedPaymentsSpendTheirNonces: a signed request to a payment route
// spends its nonce with its operation, and every way the request can end
// spends it too: sent eight times at once, one payment is made and the
// seven others are refused as replays; a request refused for its body, or
// for a missing Idempotency-Key, is refused as a replay the second time.
// The ledger shows the one payment only.
func TestSignedPaymentsSpendTheirNonces(t *testing.T) {
	t.Parallel()
	m := startMain(t, t.TempDir(), nil)
	w, mc, sg, ag := signedWorld(t, m.URL(), m.OperatorKey)
	mdt := w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", map[string]any{"agent_id": ag.str("id"), "description": "coffee",
		"currency": "USD", "max_amount": 500, "budget": map[string]any{"amount": 1000}}))
	url := m.URL() + "/v1/payments"
	body := []byte(`{"amount":100,"currency":"USD","merchant_id":"` + mc.str("id") + `","mandate_id":"` + mdt.str("id") + `"}`)

	req := sg.signed(t, "POST", url, body, "n-1", time.Now(), nil)
	reqs := make([]*http.Request, 8)
	for i := range reqs {
		reqs[i] = req.Clone(context.Background())
	}
	if got := sendAtOnce(t, reqs); got["201 captured"] != 1 || got["401 signature_replayed"] != 7 || len(got) != 2 {
		t.Fatalf("eight sends of one signed request: %v; want one payment and seven replays refused", got)
	}

	for _, c := range []struct {
		name, idem, code string
		body             []byte
	}{
		{"no amount", "n-2", "parameter_missing", []byte(`{"currency":"USD","merchant_id":"` + mc.str("id") + `"}`)},
		{"no Idempotency-Key", "", "idempotency_key_required", body},
	} {
		r := sg.signed(t, "POST", url, c.body, c.idem, time.Now(), nil)
		if got := send(t, r); got.status != 400 || got.errField("code") != c.code {
			t.Fatalf("%s: %d %s; want 400 %s", c.name, got.status, got.raw, c.code)
		}
		if got := send(t, r); got.status != 401 || got.errField("code") != "signature_replayed" {
			t.Fatalf("%s, again: %d %s; want 401 signature_replayed", c.name, got.status, got.raw)
		}
	}

	l := w.ok(200, w.call("GET", "/v1/payments", w.userKey, "", nil))
	if n := len(l.body["data"].([]any)); n != 1 {
		t.Fatalf("%d payments; want 1", n)
	}
	b := w.ok(200, w.call("GET", "/v1/balance", w.userKey, "", nil))
	if got := b.body["balances"].([]any)[0].(map[string]any)["available"]; got != float64(9900) {
		t.Fatalf("available %v after one payment of 100 from 10000; %s", got, b.raw)
	}
}

// TestSignedByNPMClientsOnTheServer: requests signed by the npm web-bot-auth
// and http-message-signatures packages pay on the real server.
func TestSignedByNPMClientsOnTheServer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "web-bot-auth")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("interop/node_modules is missing; ./test.sh runs npm ci in interop/")
		}
		t.Skip("interop/node_modules is missing; run ./test.sh")
	}
	w := newWorld(t, nil)
	pub, priv, _ := ed25519.GenerateKey(nil)
	enc := base64.RawURLEncoding.EncodeToString
	jwk := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(pub), "d": enc(priv.Seed())}
	pubJWK, _ := json.Marshal(map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(pub)})
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "npm", "public_key": json.RawMessage(pubJWK)}))
	for i, lib := range []string{"web-bot-auth", "http-message-signatures"} {
		body := `{"amount":100,"currency":"USD","merchant_id":"` + w.merch + `"}`
		idem := "npm-" + lib
		headers := map[string]string{"content-digest": httpsig.ContentDigest([]byte(body)), "idempotency-key": idem, "content-type": "application/json"}
		nonce := make([]byte, 64)
		rand.Read(nonce)
		spec, _ := json.Marshal(map[string]any{"lib": lib, "method": "POST", "url": w.base + "/v1/payments", "headers": headers,
			"jwk": jwk, "keyid": ag.str("keyid"), "components": []string{"@method", "@authority", "@path", "content-digest", "idempotency-key"},
			"created": time.Now().Unix(), "expires": time.Now().Add(time.Minute).Unix(), "nonce": base64.StdEncoding.EncodeToString(nonce)})
		cmd := exec.Command("node", "sign.mjs")
		cmd.Dir, cmd.Stdin = dir, bytes.NewReader(spec)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: node: %v", lib, err)
		}
		var sig map[string]string
		json.Unmarshal(out, &sig)
		r, _ := http.NewRequest("POST", w.base+"/v1/payments", bytes.NewReader([]byte(body)))
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		r.Header.Set("Signature-Input", sig["Signature-Input"])
		r.Header.Set("Signature", sig["Signature"])
		res := send(t, r)
		if res.status != 201 || res.str("agent_id") != ag.str("id") {
			t.Fatalf("%s (#%d): %d %s", lib, i, res.status, res.raw)
		}
	}
}

// TestAgentKeyRotation: a new key rotates the old one out after a grace
// period during which both sign; a revoked key is refused with key_revoked.
func TestAgentKeyRotation(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newWorld(t, func(m *Main) { m.Clock = clock })
	old, oldJWK := newSigner(t)
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "rotating", "public_key": json.RawMessage(oldJWK)}))
	get := func(sg *signer) resp {
		return send(t, sg.signed(t, "GET", w.base+"/v1/payments", nil, "", clock.Now(), nil))
	}
	if r := get(old); r.status != 200 {
		t.Fatalf("old key: %d %s", r.status, r.raw)
	}
	nw, newJWK := newSigner(t)
	k := w.ok(201, w.call("POST", "/v1/agents/"+ag.str("id")+"/keys", w.userKey, "", map[string]any{"public_key": json.RawMessage(newJWK), "rotate_after_seconds": 60}))
	if k.str("keyid") != nw.keyid || k.body["active"] != true {
		t.Fatalf("new key: %s", k.raw)
	}
	if r := get(old); r.status != 200 {
		t.Fatalf("old key in the grace period: %d %s", r.status, r.raw)
	}
	if r := get(nw); r.status != 200 {
		t.Fatalf("new key: %d %s", r.status, r.raw)
	}
	clock.Advance(61 * time.Second)
	if r := get(old); r.status != 401 || r.errField("code") != "key_revoked" {
		t.Fatalf("old key after the grace period: %d %s", r.status, r.raw)
	}
	if r := get(nw); r.status != 200 {
		t.Fatalf("new key after the grace period: %d %s", r.status, r.raw)
	}
	l := w.ok(200, w.call("GET", "/v1/agents/"+ag.str("id")+"/keys", w.userKey, "", nil))
	active := map[string]bool{}
	for _, k := range l.body["data"].([]any) {
		active[k.(map[string]any)["keyid"].(string)] = k.(map[string]any)["active"] == true
	}
	if len(active) != 2 || active[old.keyid] || !active[nw.keyid] {
		t.Fatalf("keys: %s", l.raw)
	}
	w.ok(200, w.call("POST", "/v1/agents/"+ag.str("id")+"/keys/"+nw.keyid+"/revoke", w.userKey, "", nil))
	if r := get(nw); r.status != 401 || r.errField("code") != "key_revoked" {
		t.Fatalf("revoked key: %d %s", r.status, r.raw)
	}
	// Bad requests.
	for _, c := range []struct {
		method, path, key string
		body              any
		status            int
	}{
		{"POST", "/v1/agents/" + ag.str("id") + "/keys", w.userKey, map[string]any{"public_key": json.RawMessage(newJWK)}, 400}, // already registered
		{"POST", "/v1/agents/" + ag.str("id") + "/keys", w.userKey, map[string]any{}, 400},
		{"POST", "/v1/agents/" + ag.str("id") + "/keys", w.agentKey, map[string]any{"public_key": json.RawMessage(newJWK)}, 403},
		{"POST", "/v1/agents/" + w.agent + "/keys/" + nw.keyid + "/revoke", w.userKey, nil, 404}, // another agent's key
		{"GET", "/v1/agents/agt_00000000000000000000000000/keys", w.userKey, nil, 404},
	} {
		if r := w.call(c.method, c.path, c.key, "", c.body); r.status != c.status {
			t.Errorf("%s %s: %d %s; want %d", c.method, c.path, r.status, r.raw, c.status)
		}
	}
}

// TestRequireSignaturesDefault: on a server started with
// --require-signatures, a mandate that does not say requires signed agent
// requests, and a user can still opt one out.
func TestRequireSignaturesDefault(t *testing.T) {
	t.Parallel()
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--require-signatures"}, func(string) string { return "" }); err != nil || !m.Config.RequireSignatures {
		t.Fatalf("--require-signatures: %+v %v", m.Config, err)
	}
	w := newWorld(t, func(m *Main) { m.Config.RequireSignatures = true })
	mandate := func(extra map[string]any) resp {
		body := map[string]any{"agent_id": w.agent, "description": "lunch", "currency": "USD", "max_amount": 500,
			"budget": map[string]any{"amount": 1000}}
		maps.Copy(body, extra)
		return w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", body))
	}
	pay := func(mdt string) resp {
		return w.call("POST", "/v1/payments", w.agentKey, "", map[string]any{"amount": 100, "currency": "USD",
			"merchant_id": w.merch, "mandate_id": mdt})
	}
	def := mandate(nil)
	if !strings.Contains(string(def.raw), `"require_signature":true`) {
		t.Fatalf("default mandate: %s", def.raw)
	}
	if r := pay(def.str("id")); r.status != 401 || r.errField("code") != "signature_required" {
		t.Fatalf("bearer under a default mandate: %d %s", r.status, r.raw)
	}
	out := mandate(map[string]any{"require_signature": false})
	if !strings.Contains(string(out.raw), `"require_signature":false`) {
		t.Fatalf("opted-out mandate: %s", out.raw)
	}
	if r := pay(out.str("id")); r.status != 201 || r.str("assurance") != "bearer" {
		t.Fatalf("bearer under an opted-out mandate: %d %s", r.status, r.raw)
	}
	// The CLI leaves the choice to the server unless told.
	for flagv, want := range map[string]string{"": "true", "--require-signature=false": "false", "--require-signature": "true"} {
		args := []string{"mandates", "create", "--agent", w.agent, "--description", "cli", "--currency", "USD", "--max", "1.00", "--budget", "2.00", "--json"}
		if flagv != "" {
			args = append(args, flagv)
		}
		stdout, stderr, err := w.cli(w.userKey, args...)
		if err != nil || !strings.Contains(stdout, `"require_signature": `+want) {
			t.Errorf("mandates create %s: %q %q %v; want require_signature %s", flagv, stdout, stderr, err, want)
		}
	}
}
