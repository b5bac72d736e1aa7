package x402

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/paybound/paybound/x402/wire"
)

// TestSetTabResponse checks that the tab answer's PAYMENT-RESPONSE written
// directly is what the generic encoding writes, for plain and other
// strings.
func TestSetTabResponse(t *testing.T) {
	for _, c := range []struct {
		network string
		tab     SellerTab
	}{
		{"paybound:local", SellerTab{ID: "tab_0123456789abcdefghjkmnpqrs", Charged: 2500, Balance: 100000, ExpiresAt: 1767225600, ChainHead: "ab01"}},
		{"paybound:x", SellerTab{ID: "tab_0123456789abcdefghjkmnpqrs", Charged: 0, Balance: 1}},
		{"paybound:\"<odd>\"", SellerTab{ID: "tab_é", Charged: 7, Balance: 9, ChainHead: "x\ny"}},
	} {
		got := http.Header{}
		setTabResponse(got, c.network, 100, &c.tab)
		ext, _ := json.Marshal(stateOf(&c.tab))
		want := http.Header{}
		setResponse(want, &SettlementResponse{Success: true, Network: c.network, Amount: strconv.Itoa(100),
			Extensions: map[string]json.RawMessage{wire.ExtensionTab: ext}}, false)
		if g, w := got.Get(wire.HeaderPaymentResponse), want.Get(wire.HeaderPaymentResponse); g != w {
			t.Errorf("%s: %s\nwant %s", c.network, g, w)
		}
		if len(got.Values("Access-Control-Expose-Headers")) != 1 {
			t.Errorf("%s: %v", c.network, got)
		}
	}
}

// TestVoucherHeader checks that a voucher's PAYMENT-SIGNATURE written
// directly is what the generic encoding writes, and that the part kept
// from one request to the next follows the requirements.
func TestVoucherHeader(t *testing.T) {
	pr := &PaymentRequired{X402Version: 2, Resource: &Resource{URL: "http://s.test/tick?a=<b>&c", Description: "a tick"}}
	reqs := PaymentRequirements{Scheme: wire.SchemeBatch, Network: "paybound:local", Amount: "100", Asset: "USD", PayTo: "mch_x",
		MaxTimeoutSeconds: 60, Extra: map[string]any{"minDeposit": "10000", "b": 1}}
	ct := &clientTab{}
	for i, tp := range []wire.TabPayload{
		{Type: wire.TabVoucher, Voucher: wire.Voucher{ChannelID: "tab_0123456789abcdefghjkmnpqrs", MaxClaimableAmount: "300", Index: 3, Preimage: "00ff"}},
		{Type: wire.TabVoucher, Voucher: wire.Voucher{ChannelID: "tab_0123456789abcdefghjkmnpqrs", MaxClaimableAmount: "400", Index: 4, Preimage: "0aff"}},
		{Type: wire.TabVoucher, Voucher: wire.Voucher{ChannelID: "tab_\"", MaxClaimableAmount: "1", Index: 1, Preimage: "aa"}},
	} {
		if i == 1 {
			reqs.Amount = "200" // a new 402 (pr) with other terms
			pr = &PaymentRequired{X402Version: 2, Resource: pr.Resource}
		}
		got, err := ct.header(pr, reqs, &tp)
		raw, _ := jsonMarshal(tp)
		want, _ := wire.EncodeHeader(&PaymentPayload{X402Version: wire.Version, Resource: pr.Resource, Accepted: reqs, Payload: raw})
		if err != nil || got != want {
			t.Errorf("voucher %d: %v\n%s\nwant %s", i, err, got, want)
		}
	}
}

// TestDecodePaymentPrefixes checks that a Middleware with tabs decodes
// every PAYMENT-SIGNATURE as wire.DecodeHeader does, also when it reads
// one from a prefix parsed before: vouchers, a document with more after
// its payload, another scheme, duplicate and odd keys, malformed tails.
func TestDecodePaymentPrefixes(t *testing.T) {
	m := &Middleware{Tabs: &Tabs{}}
	prefix := `{"x402Version":2,"resource":{"url":"http://s.test/tick"},"accepted":{"scheme":"batch-settlement","network":"paybound:local","amount":"100","asset":"USD","payTo":"mch_x","maxTimeoutSeconds":60,"extra":{"minDeposit":"10000"}},"payload":`
	voucher := func(n int) string {
		return `{"type":"voucher","voucher":{"channelId":"tab_1","maxClaimableAmount":"` + strconv.Itoa(n*100) + `","index":` + strconv.Itoa(n) + `,"preimage":"00"}}`
	}
	docs := []string{
		prefix + voucher(1) + `}`,
		prefix + voucher(2) + `}`, // read from the prefix
		prefix + voucher(3) + `,"extensions":{"payment-identifier":{"info":{"id":"abcdefghijklmnop"}}}}`,
		prefix + voucher(4) + ` }`,
		prefix + ` ` + voucher(5) + `}`,
		prefix + `{"type":"voucher"},"payload":{"type":"deposit"}}`,
		prefix + `{"type":"voucher"}} }`,
		prefix + `{"type":"voucher"}}}`,
		prefix + `{"type":"voucher"`,
		prefix + `"x"}`,
		prefix + `1,"x402Version":3}`,
		prefix + `{"a":1}{"b":2}}`,
		strings.Replace(prefix, "batch-settlement", "exact", 1) + voucher(6) + `}`,
		strings.Replace(prefix, "batch-settlement", "exact", 1) + voucher(7) + `}`,
		`{"Payload":{"a":1},` + prefix[1:] + voucher(8) + `}`,
		`{"Payload":{"a":1},` + prefix[1:] + voucher(9) + `}`,
	}
	for i, d := range docs {
		h := base64.StdEncoding.EncodeToString([]byte(d))
		var got, want PaymentPayload
		gerr := m.decodePayment(h, &got)
		werr := wire.DecodeHeader(h, &want)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if (gerr == nil) != (werr == nil) || string(gj) != string(wj) {
			t.Errorf("doc %d: %v %s\nwant %v %s", i, gerr, gj, werr, wj)
		}
	}
	if len(m.payloads.m) != 3 {
		t.Fatalf("%d prefixes kept, want 3 (the tab payment's, with two payload keys, with a Payload key before it)", len(m.payloads.m))
	}
}
