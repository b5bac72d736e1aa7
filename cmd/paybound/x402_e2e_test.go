package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
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

	"github.com/paybound/paybound/internal/storetest"
	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

// x402World is a Paybound server, an agent with a key under a mandate of
// its user, and a seller (the world's merchant) behind x402.Middleware.
type x402World struct {
	*world
	payer    x402.Payer
	mandate  string
	agent    string
	buyerKey string // the paying agent's API key
	seller   *httptest.Server
	served   atomic.Int64 // requests the seller's handlers ran
}

const cent = 10_000 // one US cent in atomic units

func newX402World(t testing.TB, mandate map[string]any) *x402World {
	return newX402WorldWith(t, mandate, nil)
}

func newX402WorldWith(t testing.TB, mandate map[string]any, configure func(*Main)) *x402World {
	w := &x402World{world: newWorld(t, configure)}
	pub, priv, _ := ed25519.GenerateKey(nil)
	jwk := `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	ag := w.ok(201, w.call("POST", "/v1/agents", w.userKey, "", map[string]any{"name": "buyer", "public_key": json.RawMessage(jwk)}))
	grant := map[string]any{"agent_id": ag.str("id"), "description": "pay for APIs", "currency": "USD", "max_amount": 1000,
		"budget": map[string]any{"amount": 100_000, "period": "week"}}
	for k, v := range mandate {
		grant[k] = v
	}
	w.buyerKey, w.agent = ag.str("api_key"), ag.str("id")
	w.mandate = w.ok(201, w.call("POST", "/v1/mandates", w.userKey, "", grant)).str("id")
	w.payer = x402.Payer{Key: priv, Mandate: w.mandate}
	mw := func(p x402.PriceFunc) *x402.Middleware {
		return &x402.Middleware{Network: "paybound:local", PayTo: w.merch, Price: p,
			Facilitator: &x402.FacilitatorClient{URL: w.m.URL() + "/x402"}}
	}
	mux := http.NewServeMux()
	mux.Handle("/quote", mw(x402.Fixed(cent, "USD", "a quote")).Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.served.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"quote":"the early bird pays the worm"}`)
	})))
	mux.Handle("/dear", mw(x402.Fixed(5*cent, "USD", "a dear quote")).Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.served.Add(1)
		io.WriteString(rw, `{"quote":"the early bird pays the worm"}`)
	})))
	mux.Handle("/fail", mw(x402.Fixed(cent, "USD", "")).Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.served.Add(1)
		http.Error(rw, "the quote service is down", http.StatusInternalServerError)
	})))
	mux.Handle("/upto", mw(func(*http.Request) (x402.Price, bool) {
		return x402.Price{Scheme: wire.SchemeUpto, Amount: 5 * cent, Asset: "USD"}, true
	}).Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.served.Add(1)
		used := int64(2 * cent)
		if r.URL.Query().Get("used") == "0" {
			used = 0
		}
		x402.Charge(r, used)
		io.WriteString(rw, "metered")
	})))
	w.seller = httptest.NewServer(mux)
	t.Cleanup(w.seller.Close)
	return w
}

// client is an HTTP client whose transport pays as the world's agent.
func (w *x402World) client(perRequest, perHour int64, base http.RoundTripper) *http.Client {
	return &http.Client{Transport: &x402.Transport{Base: base, Payer: w.payer, Asset: "USD",
		MaxPerRequest: perRequest, MaxPerHour: perHour}}
}

// payments are the user's payments made by an x402 settlement.
func (w *x402World) payments() []map[string]any {
	r := w.ok(200, w.call("GET", "/v1/payments?limit=100", w.userKey, "", nil))
	var out []map[string]any
	for _, p := range r.body["data"].([]any) {
		m := p.(map[string]any)
		if md, _ := m["metadata"].(map[string]any); md["x402_nonce"] != nil {
			out = append(out, m)
		}
	}
	return out
}

func getWith(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func settlementOf(t *testing.T, res *http.Response) x402.SettlementResponse {
	t.Helper()
	var sr x402.SettlementResponse
	if err := wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentResponse), &sr); err != nil {
		t.Fatalf("PAYMENT-RESPONSE: %v", err)
	}
	return sr
}

func TestX402PaidThroughMiddleware(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	// Unpaid: 402 with the requirements, nothing served.
	res, _ := getWith(t, http.DefaultClient, w.seller.URL+"/quote")
	var pr x402.PaymentRequired
	if res.StatusCode != 402 || wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentRequired), &pr) != nil ||
		pr.Accepts[0].Amount != "10000" || pr.Accepts[0].PayTo != w.merch || pr.Accepts[0].Network != "paybound:local" || w.served.Load() != 0 {
		t.Fatalf("unpaid: %d %+v", res.StatusCode, pr)
	}
	before, _ := w.balance(w.userKey, "USD")
	res, body := getWith(t, w.client(cent, 100*cent, nil), w.seller.URL+"/quote")
	sr := settlementOf(t, res)
	if res.StatusCode != 200 || !strings.Contains(body, "early bird") || !sr.Success || !strings.HasPrefix(sr.Transaction, "pay_") || sr.Network != "paybound:local" {
		t.Fatalf("paid: %d %s %+v", res.StatusCode, body, sr)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+sr.Transaction, w.merchKey, "", nil))
	if p.str("status") != "captured" || p.num("amount") != 1 || p.str("mandate_id") != w.mandate {
		t.Fatalf("the payment: %s", p.raw)
	}
	// v1's header names carry a v2 payment too.
	_, fr := w.facilitatorRequest(t, wire.SchemeExact, "10000", nil)
	pl := fr.PaymentPayload
	pl.Resource = pr.Resource
	h, _ := wire.EncodeHeader(pl)
	req, _ := http.NewRequest("GET", w.seller.URL+"/quote", nil)
	req.Header.Set(wire.HeaderV1Payment, h)
	res, body = getReq(t, req)
	var v1 x402.SettlementResponse
	if res.StatusCode != 200 || wire.DecodeHeader(res.Header.Get(wire.HeaderV1Response), &v1) != nil || !v1.Success {
		t.Fatalf("X-PAYMENT: %d %s %v", res.StatusCode, body, res.Header)
	}
	// The facilitator says what it settles.
	if after, _ := w.balance(w.userKey, "USD"); after != before-2 {
		t.Fatalf("the user paid %d, want 2", before-after)
	}
	sup := w.ok(200, w.call("GET", "/x402/supported", "", "", nil))
	if !strings.Contains(string(sup.raw), `"scheme":"exact"`) || !strings.Contains(string(sup.raw), "payment-identifier") {
		t.Fatalf("supported: %s", sup.raw)
	}
	w.verify()
}

func TestX402NeverChargesAFailedHandler(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	before, _ := w.balance(w.userKey, "USD")
	res, body := getWith(t, w.client(cent, 100*cent, nil), w.seller.URL+"/fail")
	if res.StatusCode != 500 || !strings.Contains(body, "down") || res.Header.Get(wire.HeaderPaymentResponse) != "" {
		t.Fatalf("failed handler: %d %s", res.StatusCode, body)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before || len(w.payments()) != 0 {
		t.Fatalf("a failed handler charged: %d → %d, %v", before, after, w.payments())
	}
	w.verify()
}

func TestX402NeverServesAFailedSettlement(t *testing.T) {
	t.Parallel()
	// Above confirm_above, the payment would wait for the user: refused.
	w := newX402World(t, map[string]any{"confirm_above": 2})
	before, _ := w.balance(w.userKey, "USD")
	res, body := getWith(t, w.client(5*cent, 100*cent, nil), w.seller.URL+"/dear")
	sr := settlementOf(t, res)
	if res.StatusCode != 402 || strings.Contains(body, "early bird") || sr.Success || sr.ErrorReason != wire.ReasonRequiresConfirmation {
		t.Fatalf("confirmation needed: %d %s %+v", res.StatusCode, body, sr)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before || len(w.payments()) != 0 {
		t.Fatalf("a refused settlement moved money: %d → %d", before, after)
	}
	w.verify()
}

// facilitatorRequest builds one signed payment of amount for the world's
// quote route.
func (w *x402World) facilitatorRequest(t *testing.T, scheme string, amount string, mutate func(*wire.Authorization)) ([]byte, *x402.FacilitatorRequest) {
	t.Helper()
	reqs := x402.PaymentRequirements{Scheme: scheme, Network: "paybound:local", Amount: amount, Asset: "USD", PayTo: w.merch, MaxTimeoutSeconds: 60}
	pr := &x402.PaymentRequired{X402Version: 2, Resource: &x402.Resource{URL: w.seller.URL + "/quote"}, Accepts: []x402.PaymentRequirements{reqs}}
	sa, err := x402.Authorize(w.payer, reqs, pr.Resource.URL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&sa.Authorization)
	}
	pl, err := x402.Payload(pr, reqs, sa)
	if err != nil {
		t.Fatal(err)
	}
	fr := &x402.FacilitatorRequest{X402Version: 2, PaymentPayload: *pl, PaymentRequirements: reqs}
	b, _ := json.Marshal(fr)
	return b, fr
}

func TestX402SettlesOncePerAuthorization(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	before, _ := w.balance(w.userKey, "USD")
	body, fr := w.facilitatorRequest(t, wire.SchemeExact, "30000", nil)
	var wg sync.WaitGroup
	txs := make([]string, 50)
	for i := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := w.call("POST", "/x402/settle", "", "-", body)
			if r.status == 200 && r.body["success"] == true {
				txs[i] = r.str("transaction")
			} else {
				txs[i] = "failed: " + string(r.raw)
			}
		}()
	}
	wg.Wait()
	for _, tx := range txs {
		if tx != txs[0] || !strings.HasPrefix(tx, "pay_") {
			t.Fatalf("50 settles of one payload answered differently: %q vs %q", tx, txs[0])
		}
	}
	if n := len(w.payments()); n != 1 {
		t.Fatalf("%d payments for one authorization", n)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before-3 {
		t.Fatalf("the user paid %d, want 3", before-after)
	}
	// The same authorization under another payment identifier pays nothing more.
	fr.PaymentPayload.WithPaymentIdentifier(x402.NewPaymentID())
	r := w.ok(200, w.call("POST", "/x402/settle", "", "-", fr))
	if r.body["success"] != false || r.str("errorReason") != wire.ReasonAuthorizationUsed {
		t.Fatalf("replayed under another id: %s", r.raw)
	}
	// The same id with another payload conflicts.
	_, other := w.facilitatorRequest(t, wire.SchemeExact, "30000", nil)
	other.PaymentPayload.Extensions = fr.PaymentPayload.Extensions
	r = w.ok(200, w.call("POST", "/x402/settle", "", "-", other))
	if r.body["success"] != false || r.str("errorReason") != wire.ReasonPaymentIDConflict {
		t.Fatalf("one payment identifier for two payloads: %s", r.raw)
	}
	if n := len(w.payments()); n != 1 {
		t.Fatalf("%d payments after replays", n)
	}
	w.verify()
}

func TestX402FacilitatorRefusesBadPayments(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	before, _ := w.balance(w.userKey, "USD")
	past := time.Now().Add(-2 * time.Hour)
	for _, c := range []struct {
		name, scheme, amount string
		mutate               func(*wire.Authorization)
		edit                 func(*x402.FacilitatorRequest)
		reason               string
	}{
		{"tampered value", "exact", "10000", func(a *wire.Authorization) { a.Value = "20000" }, func(f *x402.FacilitatorRequest) {
			f.PaymentRequirements.Amount, f.PaymentPayload.Accepted.Amount = "20000", "20000"
		}, wire.ReasonInvalidSignature},
		{"other payee", "exact", "10000", nil, func(f *x402.FacilitatorRequest) {
			f.PaymentRequirements.PayTo, f.PaymentPayload.Accepted.PayTo = w.merch2, w.merch2
		}, wire.ReasonRecipientMismatch},
		{"other network", "exact", "10000", nil, func(f *x402.FacilitatorRequest) {
			f.PaymentRequirements.Network = "paybound:elsewhere"
		}, wire.ReasonInvalidNetwork},
		{"expired", "exact", "10000", func(a *wire.Authorization) {
			a.ValidAfter, a.ValidBefore = itoa(past.Unix()), itoa(past.Add(time.Minute).Unix())
		}, nil, wire.ReasonValidBefore}, // the window is checked first; a signed one below
		{"sub-cent exact", "exact", "1", nil, nil, wire.ReasonInvalidRequirements},
		{"unknown key", "exact", "10000", func(a *wire.Authorization) { a.From = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, nil, wire.ReasonInvalidSignature},
		{"version 1", "exact", "10000", nil, func(f *x402.FacilitatorRequest) { f.X402Version = 1 }, wire.ReasonInvalidVersion},
		{"unknown scheme", "exact", "10000", nil, func(f *x402.FacilitatorRequest) {
			f.PaymentRequirements.Scheme, f.PaymentPayload.Accepted.Scheme = "deferred", "deferred"
		}, wire.ReasonUnsupportedScheme},
	} {
		_, fr := w.facilitatorRequest(t, c.scheme, c.amount, c.mutate)
		if c.edit != nil {
			c.edit(fr)
		}
		for _, path := range []string{"/x402/verify", "/x402/settle"} {
			r := w.ok(200, w.call("POST", path, "", "-", fr))
			got := r.str("invalidReason") + r.str("errorReason")
			if r.body["isValid"] == true || r.body["success"] == true || got != c.reason {
				t.Errorf("%s %s: %s; want %s", c.name, path, r.raw, c.reason)
			}
		}
	}
	// An expired authorization, correctly signed, is refused for its window.
	reqs := x402.PaymentRequirements{Scheme: "exact", Network: "paybound:local", Amount: "10000", Asset: "USD", PayTo: w.merch, MaxTimeoutSeconds: 60}
	sa, _ := x402.Authorize(w.payer, reqs, w.seller.URL+"/quote", past)
	pl, _ := x402.Payload(&x402.PaymentRequired{Resource: &x402.Resource{URL: w.seller.URL + "/quote"}}, reqs, sa)
	r := w.ok(200, w.call("POST", "/x402/settle", "", "-", x402.FacilitatorRequest{X402Version: 2, PaymentPayload: *pl, PaymentRequirements: reqs}))
	if r.str("errorReason") != wire.ReasonValidBefore {
		t.Errorf("expired: %s", r.raw)
	}
	if r := w.call("POST", "/x402/settle", "", "-", "not json"); r.status != 400 || r.errField("code") != "invalid_json" {
		t.Errorf("not JSON: %d %s", r.status, r.raw)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before || len(w.payments()) != 0 {
		t.Fatalf("bad payments moved money: %d → %d", before, after)
	}
	w.verify()
}

// loseFirstPaidAnswer is a transport that delivers the first paid request
// and loses its answer, as a dropped connection would.
type loseFirstPaidAnswer struct {
	lost atomic.Bool
	sent atomic.Int64
}

func (l *loseFirstPaidAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(r)
	if r.Header.Get(wire.HeaderPaymentSignature) != "" {
		l.sent.Add(1)
		if err == nil && l.lost.CompareAndSwap(false, true) {
			res.Body.Close()
			return nil, errors.New("connection reset")
		}
	}
	return res, err
}

// TestX402RevokedKeyStopsPaying: the facilitator remembers an agent's
// keys (and the signatures it verified) between calls, yet a key revoked
// is refused at once, by /verify and /settle (a signature verified before
// does not stand for the key), and its payment is not made.
func TestX402RevokedKeyStopsPaying(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newX402WorldWith(t, nil, func(m *Main) { m.Clock = clock })
	before, _ := w.balance(w.userKey, "USD")
	_, fr := w.facilitatorRequest(t, wire.SchemeExact, "10000", nil)
	if r := w.ok(200, w.call("POST", "/x402/verify", "", "-", fr)); r.body["isValid"] != true {
		t.Fatalf("verify before the revocation: %s", r.raw)
	}
	keyid := wire.Thumbprint(w.payer.Key.Public().(ed25519.PublicKey))
	w.ok(200, w.call("POST", "/v1/agents/"+w.agent+"/keys/"+keyid+"/revoke", w.userKey, "", nil))
	clock.Advance(time.Second)
	if r := w.ok(200, w.call("POST", "/x402/verify", "", "-", fr)); r.body["isValid"] != false || r.str("invalidReason") != wire.ReasonInvalidSignature {
		t.Fatalf("verify after the revocation: %s", r.raw)
	}
	if r := w.ok(200, w.call("POST", "/x402/settle", "", "-", fr)); r.body["success"] != false || r.str("errorReason") != wire.ReasonInvalidSignature {
		t.Fatalf("settle after the revocation: %s", r.raw)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before || len(w.payments()) != 0 {
		t.Fatalf("a revoked key paid: %d → %d, %d payments", before, after, len(w.payments()))
	}
	w.verify()
}

// TestX402RepeatRequestPaysOnFirstSend: a Transport that paid a resource
// sends the next request's payment with it (one round trip, not the 402's
// two), and follows the seller's new 402 when its price changed: each
// request paid once, at the price of the moment, and nothing paid twice.
func TestX402RepeatRequestPaysOnFirstSend(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	var price atomic.Int64
	price.Store(cent)
	srv := httptest.NewServer((&x402.Middleware{Network: "paybound:local", PayTo: w.merch,
		Price: func(*http.Request) (x402.Price, bool) {
			return x402.Price{Amount: price.Load(), Asset: "USD"}, true
		},
		Facilitator: &x402.FacilitatorClient{URL: w.m.URL() + "/x402"}}).Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, "quote")
	})))
	defer srv.Close()
	sends := &countingTransport{base: http.DefaultTransport}
	c := w.client(5*cent, 100*cent, sends)
	before, _ := w.balance(w.userKey, "USD")
	for i, want := range []struct {
		price int64
		sends int64
	}{{cent, 2}, {cent, 1}, {cent, 1}, {2 * cent, 3}, {2 * cent, 1}} {
		price.Store(want.price)
		n := sends.n.Load()
		if res, body := getWith(t, c, srv.URL+"/q"); res.StatusCode != 200 || body != "quote" {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
		if got := sends.n.Load() - n; got != want.sends {
			t.Fatalf("request %d took %d sends, want %d", i, got, want.sends)
		}
	}
	// 1+1+1+2+2 cents, in five payments
	if after, _ := w.balance(w.userKey, "USD"); after != before-7 || len(w.payments()) != 5 {
		t.Fatalf("paid %d in %d payments, want 7 in 5", before-after, len(w.payments()))
	}
	w.verify()
}

// countingTransport counts the requests sent.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func TestX402RetryReusesThePayment(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	before, _ := w.balance(w.userKey, "USD")
	lose := &loseFirstPaidAnswer{}
	res, body := getWith(t, w.client(cent, 100*cent, lose), w.seller.URL+"/quote")
	if res.StatusCode != 200 || !strings.Contains(body, "early bird") || lose.sent.Load() != 2 {
		t.Fatalf("after a lost answer: %d %s, %d paid sends", res.StatusCode, body, lose.sent.Load())
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before-1 || len(w.payments()) != 1 {
		t.Fatalf("a retry paid again: %d → %d, %d payments", before, after, len(w.payments()))
	}
	// The seller answered the retry with the answer paid for: its handler ran once.
	if n := w.served.Load(); n != 1 {
		t.Fatalf("the handler ran %d times for one payment", n)
	}
	// The same payment identifier with another payment is a conflict.
	_, fr := w.facilitatorRequest(t, wire.SchemeExact, "10000", nil)
	var pr x402.PaymentRequired
	res0, _ := getWith(t, http.DefaultClient, w.seller.URL+"/quote")
	wire.DecodeHeader(res0.Header.Get(wire.HeaderPaymentRequired), &pr)
	pl := fr.PaymentPayload
	pl.Resource = pr.Resource
	pl.WithPaymentIdentifier("pay_0123456789abcdef0123")
	h1, _ := wire.EncodeHeader(pl)
	req, _ := http.NewRequest("GET", w.seller.URL+"/quote", nil)
	req.Header.Set(wire.HeaderPaymentSignature, h1)
	if res, _ := getReq(t, req); res.StatusCode != 200 {
		t.Fatalf("a payment with an identifier: %d", res.StatusCode)
	}
	_, fr2 := w.facilitatorRequest(t, wire.SchemeExact, "10000", nil)
	pl2 := fr2.PaymentPayload
	pl2.Resource = pr.Resource
	pl2.WithPaymentIdentifier("pay_0123456789abcdef0123")
	h2, _ := wire.EncodeHeader(pl2)
	req.Header.Set(wire.HeaderPaymentSignature, h2)
	if res, _ := getReq(t, req); res.StatusCode != 409 {
		t.Fatalf("one payment identifier for two payments: %d, want 409", res.StatusCode)
	}
	if n := len(w.payments()); n != 2 {
		t.Fatalf("%d payments, want 2", n)
	}
	w.verify()
}

func TestX402UnknownSettlementIsNotServed(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	// A facilitator whose /settle answers garbage, and one that is down.
	real := w.m.URL() + "/x402"
	bad := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/settle" {
			io.WriteString(rw, `{"success":true}`) // no transaction: malformed
			return
		}
		res, err := http.Post(real+r.URL.Path, "application/json", r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		io.Copy(rw, res.Body)
	}))
	defer bad.Close()
	var ran atomic.Int64
	h := (&x402.Middleware{Network: "paybound:local", PayTo: w.merch, Price: x402.Fixed(cent, "USD", ""),
		Facilitator: &x402.FacilitatorClient{URL: bad.URL}}).Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		io.WriteString(rw, "secret")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := &http.Client{Transport: &x402.Transport{Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: cent, Retries: 1}}
	res, body := getWith(t, c, srv.URL+"/x")
	sr := settlementOf(t, res)
	if res.StatusCode != 503 || body == "secret" || strings.Contains(body, "secret") || sr.ErrorReason != wire.ReasonResponseMalformed || ran.Load() == 0 {
		t.Fatalf("malformed settlement: %d %s %+v", res.StatusCode, body, sr)
	}
	// The transport gave the hourly cap back: the payment did not settle.
	res, _ = getWith(t, &http.Client{Transport: &x402.Transport{Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: cent}}, w.seller.URL+"/quote")
	if res.StatusCode != 200 {
		t.Fatalf("after an unknown settlement: %d", res.StatusCode)
	}
}

func TestX402TransportCaps(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	// Above the per-request cap: the 402 comes back as it is.
	if res, _ := getWith(t, w.client(cent-1, 100*cent, nil), w.seller.URL+"/quote"); res.StatusCode != 402 {
		t.Fatalf("above the per-request cap: %d", res.StatusCode)
	}
	c := w.client(cent, 2*cent, nil)
	for i, want := range []int{200, 200, 402} {
		if res, _ := getWith(t, c, w.seller.URL+"/quote"); res.StatusCode != want {
			t.Fatalf("request %d under an hourly cap of two: %d, want %d", i, res.StatusCode, want)
		}
	}
	if n := len(w.payments()); n != 2 {
		t.Fatalf("%d payments, want 2", n)
	}
}

func TestX402Upto(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	before, _ := w.balance(w.userKey, "USD")
	c := w.client(5*cent, 100*cent, nil)
	res, body := getWith(t, c, w.seller.URL+"/upto")
	sr := settlementOf(t, res)
	if res.StatusCode != 200 || body != "metered" || sr.Amount != "20000" {
		t.Fatalf("upto: %d %s %+v", res.StatusCode, body, sr)
	}
	res, _ = getWith(t, c, w.seller.URL+"/upto?used=0")
	if sr := settlementOf(t, res); res.StatusCode != 200 || !sr.Success || sr.Transaction != "" || sr.Amount != "0" {
		t.Fatalf("upto, nothing used: %d %+v", res.StatusCode, sr)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before-2 || len(w.payments()) != 1 {
		t.Fatalf("upto charged %d in %d payments, want 2 in 1", before-after, len(w.payments()))
	}
	// Settling above the authorized maximum is refused.
	_, fr := w.facilitatorRequest(t, wire.SchemeUpto, "50000", nil)
	fr.PaymentRequirements.Amount = "60000"
	r := w.ok(200, w.call("POST", "/x402/settle", "", "-", fr))
	if r.str("errorReason") != wire.ReasonValueMismatch {
		t.Fatalf("upto above the maximum: %s", r.raw)
	}
	w.verify()
}

// TestX402PaidByNPMFetch: the real @x402/fetch client, with a Paybound
// scheme client registered in @x402/core's registry, pays a route behind
// the Go Middleware; the payment is in the ledger.
func TestX402PaidByNPMFetch(t *testing.T) {
	t.Parallel()
	dir := interopDir(t, "@x402/fetch")
	w := newX402World(t, nil)
	before, _ := w.balance(w.userKey, "USD")
	enc := base64.RawURLEncoding.EncodeToString
	pub := w.payer.Key.Public().(ed25519.PublicKey)
	spec, _ := json.Marshal(map[string]any{"url": w.seller.URL + "/quote", "network": "paybound:local", "mandate": w.mandate,
		"keyid": wire.Thumbprint(pub), "jwk": map[string]string{"x": enc(pub), "d": enc(w.payer.Key.Seed())}})
	cmd := exec.Command("node", "x402fetch.mjs")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(spec)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Status          int
		Body            string
		PaymentResponse x402.SettlementResponse
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got.Status != 200 || !strings.Contains(got.Body, "early bird") || !got.PaymentResponse.Success {
		t.Fatalf("@x402/fetch: %s", out)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+got.PaymentResponse.Transaction, w.merchKey, "", nil))
	if p.str("status") != "captured" || p.num("amount") != 1 {
		t.Fatalf("the payment: %s", p.raw)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before-1 {
		t.Fatalf("the user paid %d, want 1", before-after)
	}
	w.verify()
}

// TestX402TransportPaysNPMResourceServer: the real resource-server side of
// @x402/core, with Paybound as its facilitator (HTTPFacilitatorClient),
// takes payment from the Go Transport.
func TestX402TransportPaysNPMResourceServer(t *testing.T) {
	t.Parallel()
	dir := interopDir(t, "@x402/core")
	w := newX402World(t, nil)
	before, _ := w.balance(w.userKey, "USD")
	cmd := exec.Command("node", "x402server.mjs")
	cmd.Dir, cmd.Stderr = dir, tlog{t}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	spec, _ := json.Marshal(map[string]any{"facilitator": w.m.URL() + "/x402", "network": "paybound:local", "payTo": w.merch,
		"amount": "20000", "asset": "USD"})
	stdin.Write(append(spec, '\n'))
	var ready struct{ URL string }
	if err := json.NewDecoder(stdout).Decode(&ready); err != nil || ready.URL == "" {
		t.Fatalf("the node server did not start: %v", err)
	}
	c := &http.Client{Transport: &x402.Transport{Payer: w.payer, Asset: "USD", MaxPerRequest: 2 * cent, MaxPerHour: 10 * cent}}
	res, body := getWith(t, c, ready.URL+"/quote")
	sr := settlementOf(t, res)
	if res.StatusCode != 200 || !strings.Contains(body, "@x402/core") || !sr.Success {
		t.Fatalf("@x402/core server: %d %s %+v", res.StatusCode, body, sr)
	}
	p := w.ok(200, w.call("GET", "/v1/payments/"+sr.Transaction, w.merchKey, "", nil))
	if p.str("status") != "captured" || p.num("amount") != 2 {
		t.Fatalf("the payment: %s", p.raw)
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before-2 {
		t.Fatalf("the user paid %d, want 2", before-after)
	}
	w.verify()
}

// interopDir is interop/, once the npm package pkg is installed there; the
// test is skipped without it (and fails in CI, where ./test.sh installs it).
func interopDir(t *testing.T, pkg string) string {
	dir := filepath.Join("..", "..", "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("interop/node_modules is missing; ./test.sh runs npm ci in interop/")
		}
		t.Skip("interop/node_modules is missing; run ./test.sh")
	}
	return dir
}

// TestX402SettlesOnceAcrossProcesses: two servers on one PostgreSQL
// database, fifty settles of one payload through both at once: one
// payment, and every settle answers it.
func TestX402SettlesOnceAcrossProcesses(t *testing.T) {
	if !storetest.UsePostgres() {
		t.Skip("two processes need a shared store: run with PAYBOUND_TEST_STORE=postgres")
	}
	t.Parallel()
	w := newX402World(t, nil)
	other := &api{t: t, base: secondMain(t, w.m, nil).URL()}
	before, _ := w.balance(w.userKey, "USD")
	body, _ := w.facilitatorRequest(t, wire.SchemeExact, "40000", nil)
	var wg sync.WaitGroup
	txs := make([]string, 50)
	for i := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := w.api
			if i%2 == 1 {
				a = other
			}
			r := a.call("POST", "/x402/settle", "", "-", body)
			txs[i] = r.str("transaction") + " " + r.str("errorReason")
		}()
	}
	wg.Wait()
	for _, tx := range txs {
		if tx != txs[0] || !strings.HasPrefix(tx, "pay_") {
			t.Fatalf("settles through two servers answered %q and %q", tx, txs[0])
		}
	}
	if after, _ := w.balance(w.userKey, "USD"); after != before-4 || len(w.payments()) != 1 {
		t.Fatalf("the user paid %d in %d payments, want 4 in 1", before-after, len(w.payments()))
	}
	w.verify()
}
