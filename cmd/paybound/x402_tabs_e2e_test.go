package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paybound/paybound/x402"
	"github.com/paybound/paybound/x402/wire"
)

const tick = 100 // 0.0001 USD in atomic units: a sub-cent price

// tabSeller is a seller whose /tick route costs a tick and accepts tabs,
// keeping its vouchers in a file.
type tabSeller struct {
	mw  *x402.Middleware
	srv *httptest.Server
	st  *x402.FileTabStore
}

func (w *x402World) tabSeller(t testing.TB, path string) *tabSeller {
	st, err := x402.OpenFileTabStore(path)
	if err != nil {
		t.Fatal(err)
	}
	mw := &x402.Middleware{Network: "paybound:local", PayTo: w.merch, Price: x402.Fixed(tick, "USD", "a tick"),
		Facilitator: &x402.FacilitatorClient{URL: w.m.URL() + "/x402"},
		Tabs: &x402.Tabs{Store: st, MinDeposit: 10 * cent,
			Claims: &x402.FacilitatorClient{URL: w.m.URL() + "/x402", Header: http.Header{"Authorization": {"Bearer " + w.merchKey}}}}}
	srv := httptest.NewServer(mw.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(rw, "no", http.StatusBadGateway)
			return
		}
		io.WriteString(rw, "tock")
	})))
	s := &tabSeller{mw: mw, srv: srv, st: st}
	t.Cleanup(func() { srv.Close(); st.Close() })
	return s
}

// tabClient pays with tabs of 10 cents.
func (w *x402World) tabClient() (*http.Client, *x402.Transport) {
	tr := &x402.Transport{Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: 100 * cent, TabDeposit: 10 * cent}
	return &http.Client{Transport: tr}, tr
}

func (w *x402World) tab(id string) resp {
	return w.ok(200, w.call("GET", "/x402/tabs/"+id, w.userKey, "", nil))
}

func TestX402TabPaysSubCentRequests(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	s := w.tabSeller(t, filepath.Join(t.TempDir(), "tabs.jsonl"))
	c, tr := w.tabClient()
	rec := &lastPayment{base: http.DefaultTransport}
	tr.Base = rec
	before, _ := w.balance(w.userKey, "USD")
	for i := range 250 {
		res, body := getWith(t, c, s.srv.URL+"/tick")
		if res.StatusCode != 200 || body != "tock" {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
	}
	// A failed handler charges nothing on the tab.
	if res, _ := getWith(t, c, s.srv.URL+"/tick?fail=1"); res.StatusCode != 502 {
		t.Fatalf("failing handler: %d", res.StatusCode)
	}
	tabs := tr.Tabs()
	if len(tabs) != 1 || tabs[0].Charged != 250*tick || tabs[0].Vouchers != 250 {
		t.Fatalf("the payer's tabs: %+v", tabs)
	}
	// One deposit: 10 cents held, nothing captured yet.
	if av, pend := w.balance(w.userKey, "USD"); av != before-10 || pend != 10 {
		t.Fatalf("after the deposit: available %d (was %d), pending %d", av, before, pend)
	}
	if tb := w.tab(tabs[0].ID); tb.str("status") != "open" || tb.num("deposit") != 10 {
		t.Fatalf("the open tab: %s", tb.raw)
	}
	// A replayed voucher earns nothing and serves nothing; nor does a
	// voucher for the next step whose preimage is not on the chain, or
	// one that skips a step.
	var last x402.PaymentPayload
	var lastTab wire.TabPayload
	if err := wire.DecodeHeader(rec.header, &last); err != nil || json.Unmarshal(last.Payload, &lastTab) != nil || lastTab.Voucher.Index != 250 {
		t.Fatalf("the last payment: %v %+v", err, lastTab)
	}
	forged := lastTab.Voucher
	forged.Index, forged.MaxClaimableAmount = 251, strconv.Itoa(251*tick)
	forged.Preimage = strings.Repeat("ab", 32)
	skipped := lastTab.Voucher
	skipped.Index, skipped.MaxClaimableAmount = 249, strconv.Itoa(249*tick)
	for name, v := range map[string]wire.Voucher{"replayed": lastTab.Voucher, "forged": forged, "an earlier step": skipped} {
		raw, _ := json.Marshal(wire.TabPayload{Type: wire.TabVoucher, Voucher: v})
		h, _ := wire.EncodeHeader(x402.PaymentPayload{X402Version: 2, Resource: last.Resource, Accepted: last.Accepted, Payload: raw})
		req, _ := http.NewRequest("GET", s.srv.URL+"/tick", nil)
		req.Header.Set(wire.HeaderPaymentSignature, h)
		res, body := getReq(t, req)
		if res.StatusCode != 402 || body == "tock" {
			t.Fatalf("a %s voucher: %d %s", name, res.StatusCode, body)
		}
	}
	// The seller claims: 250 ticks = 2.5 cents, captured as 3; the rest released.
	if err := s.mw.ClaimAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	tb := w.tab(tabs[0].ID)
	if tb.str("status") != "claimed" || tb.num("claimed_atomic") != 250*tick || tb.num("captured") != 3 ||
		tb.num("vouchers") != 250 || tb.str("chain_head") != tabs[0].ChainHead {
		t.Fatalf("the claimed tab: %s; the payer's chain %s", tb.raw, tabs[0].ChainHead)
	}
	if av, pend := w.balance(w.userKey, "USD"); av != before-3 || pend != 0 {
		t.Fatalf("after the claim: available %d (was %d), pending %d", av, before, pend)
	}
	// The claim is in the ledger as the deposit's capture.
	p := w.ok(200, w.call("GET", "/v1/payments/"+tb.str("payment_id"), w.merchKey, "", nil))
	if p.str("status") != "captured" || p.num("amount_captured") != 3 {
		t.Fatalf("the tab's payment: %s", p.raw)
	}
	// ... and in the transparency log, which the payer can read.
	if tr := w.ok(200, w.call("GET", "/v1/payments/"+tb.str("payment_id")+"/trace", w.userKey, "", nil)); !strings.Contains(string(tr.raw), "payment.captured") {
		t.Fatalf("the claim is not in the log: %s", tr.raw)
	}
	// A claimed tab takes no more vouchers: the client opens another.
	if res, body := getWith(t, c, s.srv.URL+"/tick"); res.StatusCode != 200 || body != "tock" || len(tr.Tabs()) != 2 {
		t.Fatalf("after the claim: %d %s, %d tabs", res.StatusCode, body, len(tr.Tabs()))
	}
	w.verify()
}

func getReq(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestX402TabSurvivesASellerCrash(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	path := filepath.Join(t.TempDir(), "tabs.jsonl")
	s := w.tabSeller(t, path)
	c, tr := w.tabClient()
	for range 37 {
		if res, _ := getWith(t, c, s.srv.URL+"/tick"); res.StatusCode != 200 {
			t.Fatalf("paid tick: %d", res.StatusCode)
		}
	}
	// The seller dies between serving and claiming; another starts over the
	// same voucher file and claims what was earned.
	s.srv.Close()
	s.st.Close()
	s2 := w.tabSeller(t, path)
	if err := s2.mw.ClaimAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := tr.Tabs()[0].ID
	if tb := w.tab(id); tb.str("status") != "claimed" || tb.num("claimed_atomic") != 37*tick || tb.num("captured") != 1 {
		t.Fatalf("claimed after a restart: %s", tb.raw)
	}
	w.verify()
}

func TestX402TabClosedByPayerOrExpired(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now().UTC()}
	w := newX402WorldWith(t, nil, func(m *Main) { m.Clock = clock })
	s := w.tabSeller(t, filepath.Join(t.TempDir(), "tabs.jsonl"))
	c, tr := w.tabClient()
	before, _ := w.balance(w.userKey, "USD")
	for range 3 {
		getWith(t, c, s.srv.URL+"/tick")
	}
	id := tr.Tabs()[0].ID
	// The payer closes; the seller may claim during the grace.
	if r := w.ok(200, w.call("POST", "/x402/tabs/"+id+"/close", w.buyerKey, "", nil)); r.str("status") != "closing" {
		t.Fatalf("closed: %s", r.raw)
	}
	if err := s.mw.ClaimAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tb := w.tab(id); tb.str("status") != "claimed" || tb.num("captured") != 1 {
		t.Fatalf("claimed in the grace: %s", tb.raw)
	}
	// A second tab the seller never claims: released at its end.
	c2 := &http.Client{Transport: &x402.Transport{Payer: w.payer, Asset: "USD", MaxPerRequest: cent, MaxPerHour: 100 * cent, TabDeposit: 10 * cent}}
	getWith(t, c2, s.srv.URL+"/tick")
	tabs := c2.Transport.(*x402.Transport).Tabs()
	clock.Advance(2 * time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for w.tab(tabs[0].ID).str("status") != "expired" {
		if time.Now().After(deadline) {
			t.Fatalf("the unclaimed tab did not expire: %s", w.tab(tabs[0].ID).raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if av, pend := w.balance(w.userKey, "USD"); av != before-1 || pend != 0 {
		t.Fatalf("after expiry: available %d (was %d), pending %d", av, before, pend)
	}
	// The seller's claim after the end is refused.
	err := s.mw.ClaimTab(context.Background(), tabs[0].ID)
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("a claim after the tab's end: %v", err)
	}
	w.verify()
}

// TestX402TabClaimedAtAThreshold: a seller that claims at 5 ticks claims
// the tab by itself; the payer's next request opens another tab.
func TestX402TabClaimedAtAThreshold(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	s := w.tabSeller(t, filepath.Join(t.TempDir(), "tabs.jsonl"))
	s.mw.Tabs.ClaimAbove = 5 * tick
	c, tr := w.tabClient()
	for range 5 {
		if res, _ := getWith(t, c, s.srv.URL+"/tick"); res.StatusCode != 200 {
			t.Fatalf("tick: %d", res.StatusCode)
		}
	}
	id := tr.Tabs()[0].ID
	deadline := time.Now().Add(10 * time.Second)
	for w.tab(id).str("status") != "claimed" {
		if time.Now().After(deadline) {
			t.Fatalf("the tab was not claimed at its threshold: %s", w.tab(id).raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res, body := getWith(t, c, s.srv.URL+"/tick"); res.StatusCode != 200 || body != "tock" || len(tr.Tabs()) != 2 {
		t.Fatalf("after the threshold's claim: %d %s, %d tabs", res.StatusCode, body, len(tr.Tabs()))
	}
	if tb := w.tab(id); tb.num("claimed_atomic") != 5*tick || tb.num("captured") != 1 || tb.str("chain_head") != tr.Tabs()[0].ChainHead {
		t.Fatalf("the claimed tab: %s", tb.raw)
	}
	w.verify()
}

// lastPayment is a RoundTripper that keeps the last payment header
// answered 200.
type lastPayment struct {
	base   http.RoundTripper
	header string
}

func (l *lastPayment) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := l.base.RoundTrip(r)
	if h := r.Header.Get(wire.HeaderPaymentSignature); err == nil && h != "" && res.StatusCode == 200 {
		l.header = h
	}
	return res, err
}

// TestX402TabRefusesCostlyVouchers: a payer that commits to a unit far
// below the price (so that each voucher would cost the seller many hashes)
// opens no tab: its deposit is refused and nothing is held.
func TestX402TabRefusesCostlyVouchers(t *testing.T) {
	t.Parallel()
	w := newX402World(t, nil)
	s := w.tabSeller(t, filepath.Join(t.TempDir(), "tabs.jsonl"))
	before, _ := w.balance(w.userKey, "USD")
	var pr x402.PaymentRequired
	res0, _ := getWith(t, http.DefaultClient, s.srv.URL+"/tick")
	if err := wire.DecodeHeader(res0.Header.Get(wire.HeaderPaymentRequired), &pr); err != nil || len(pr.Accepts) < 2 {
		t.Fatalf("the 402: %v %+v", err, pr)
	}
	reqs := pr.Accepts[1]
	dr := reqs
	dr.Amount, dr.Extra = strconv.Itoa(10*cent), nil
	sa, err := x402.Authorize(w.payer, dr, pr.Resource.URL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id := wire.TabID(sa.Authorization.From, sa.Authorization.Nonce)
	chain, _ := wire.NewPayChain(10 * cent)
	v := chain.Voucher(id, 1, tick) // a unit of 1: tick steps a request
	v.Commitment = chain.Commit(w.payer.Key, id, 1)
	raw, _ := json.Marshal(wire.TabPayload{Type: wire.TabDeposit, Deposit: sa, Voucher: v})
	h, _ := wire.EncodeHeader(x402.PaymentPayload{X402Version: 2, Resource: pr.Resource, Accepted: reqs, Payload: raw})
	req, _ := http.NewRequest("GET", s.srv.URL+"/tick", nil)
	req.Header.Set(wire.HeaderPaymentSignature, h)
	res, body := getReq(t, req)
	var sr x402.SettlementResponse
	wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentResponse), &sr)
	if res.StatusCode != 402 || body == "tock" || sr.Success || sr.ErrorReason != wire.ReasonInvalidPayload {
		t.Fatalf("a deposit whose voucher moves %d steps: %d %s %+v", tick, res.StatusCode, body, sr)
	}
	if av, pend := w.balance(w.userKey, "USD"); av != before || pend != 0 {
		t.Fatalf("after the refused deposit: available %d (was %d), pending %d", av, before, pend)
	}
	w.verify()
}
