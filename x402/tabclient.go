package x402

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/paybound/paybound/x402/wire"
)

// ClientTab is a payer's record of one tab: what its answered vouchers
// charged, how many, and their hash chain, to compare with the tab's
// receipt (GET /x402/tabs/{id}) once the seller claimed it.
type ClientTab struct {
	ID        string
	PayTo     string
	Balance   int64
	Charged   int64
	Vouchers  int64
	ChainHead string
}

type clientTab struct {
	mu    sync.Mutex // one voucher at a time: they are cumulative
	open  *ClientTab
	chain *wire.PayChain // open's hash chain, of unit atomic units a step
	unit  int64
	// the PAYMENT-SIGNATURE's JSON up to its payload, for pr (a Transport
	// keeps the same one for a resource it pays with a tab)
	prefixFor *PaymentRequired
	prefix    []byte
}

// header is the PAYMENT-SIGNATURE that pays reqs of pr with tp. A voucher
// on a tab (every request but the deposit) is written directly after the
// JSON that stays the same from one request to the next: the bytes
// json.Marshal would write, for a fraction of its work.
func (ct *clientTab) header(pr *PaymentRequired, reqs PaymentRequirements, tp *wire.TabPayload) (string, error) {
	v := &tp.Voucher
	if tp.Type != wire.TabVoucher || v.Commitment != nil || !plainJSON(v.ChannelID) {
		raw, err := jsonMarshal(tp)
		if err != nil {
			return "", err
		}
		return wire.EncodeHeader(&PaymentPayload{X402Version: wire.Version, Resource: pr.Resource, Accepted: reqs, Payload: raw})
	}
	if ct.prefixFor != pr {
		doc, err := json.Marshal(&PaymentPayload{X402Version: wire.Version, Resource: pr.Resource, Accepted: reqs, Payload: json.RawMessage("0")})
		if err != nil {
			return "", err
		}
		ct.prefixFor, ct.prefix = pr, bytes.TrimSuffix(doc, []byte("0}"))
	}
	b := make([]byte, 0, len(ct.prefix)+200)
	b = append(b, ct.prefix...)
	b = append(b, `{"type":"voucher","voucher":{"channelId":"`...)
	b = append(b, v.ChannelID...)
	b = append(b, `","maxClaimableAmount":"`...)
	b = append(b, v.MaxClaimableAmount...)
	b = append(b, `","index":`...)
	b = strconv.AppendInt(b, v.Index, 10)
	b = append(b, `,"preimage":"`...)
	b = append(b, v.Preimage...)
	b = append(b, `"}}}`...)
	return base64.StdEncoding.EncodeToString(b), nil
}

// spent reports whether ct has no open tab or it can't pay price more.
func (ct *clientTab) spent(price int64) bool {
	return ct.open == nil || ct.open.Charged+price > min(ct.open.Balance, ct.chain.Length()*ct.unit)
}

// Tabs returns the payer's record of every tab it opened.
func (t *Transport) Tabs() []ClientTab {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ClientTab, 0, len(t.tabLog))
	for _, ct := range t.tabLog {
		out = append(out, *ct)
	}
	return out
}

// chooseTab picks a batch-settlement requirement t can pay per request.
func (t *Transport) chooseTab(pr *PaymentRequired) (PaymentRequirements, bool) {
	if t.TabDeposit <= 0 || pr.X402Version != wire.Version || pr.Resource == nil {
		return PaymentRequirements{}, false
	}
	for _, r := range pr.Accepts {
		amount, err := wire.ParseAtomic(r.Amount)
		if err == nil && r.Scheme == wire.SchemeBatch && wire.ValidNetwork(r.Network) && r.Asset == t.Asset &&
			amount > 0 && amount <= t.MaxPerRequest {
			return r, true
		}
	}
	return PaymentRequirements{}, false
}

func (t *Transport) tabFor(reqs PaymentRequirements) *clientTab {
	key := reqs.PayTo + "|" + reqs.Network + "|" + reqs.Asset + "|" + reqs.Amount // the price is the chain's unit
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tabs == nil {
		t.tabs = map[string]*clientTab{}
	}
	ct := t.tabs[key]
	if ct == nil {
		ct = &clientTab{}
		t.tabs[key] = ct
	}
	return ct
}

// payTab pays req's 402 from the seller's tab: a voucher on the open tab,
// or a deposit that opens one (within the hourly cap) with the first
// voucher. A corrective 402 (the seller counts otherwise, or the tab is
// spent) is followed once: the count taken from the seller, or a new tab.
func (t *Transport) payTab(req *http.Request, pr *PaymentRequired, reqs PaymentRequirements, first *http.Response) (*http.Response, error) {
	price, _ := wire.ParseAtomic(reqs.Amount)
	ct := t.tabFor(reqs)
	ct.mu.Lock()
	defer ct.mu.Unlock()
	res := first
	for attempt := 0; attempt < 3; attempt++ {
		var tp wire.TabPayload
		var deposit int64
		if ct.spent(price) {
			deposit = t.depositFor(reqs)
			if deposit < price || !t.reserve(deposit) {
				return res, nil
			}
			chain, err := wire.NewPayChain(min(deposit/price, wire.MaxChainLength))
			if err != nil {
				t.release(deposit)
				return nil, err
			}
			dr := reqs
			dr.Amount, dr.Extra = strconv.FormatInt(deposit, 10), nil
			sa, err := Authorize(t.Payer, dr, pr.Resource.URL, t.now())
			if err != nil {
				t.release(deposit)
				return nil, err
			}
			id := wire.TabID(sa.Authorization.From, sa.Authorization.Nonce)
			v := chain.Voucher(id, price, 1)
			v.Commitment = chain.Commit(t.Payer.Key, id, price)
			tp = wire.TabPayload{Type: wire.TabDeposit, Deposit: sa, Voucher: v}
			ct.open = &ClientTab{ID: id, PayTo: reqs.PayTo, Balance: deposit, ChainHead: wire.ChainStart(id)}
			ct.chain, ct.unit = chain, price
			t.mu.Lock()
			t.tabLog = append(t.tabLog, ct.open)
			t.mu.Unlock()
		} else {
			tp = wire.TabPayload{Type: wire.TabVoucher, Voucher: ct.chain.Voucher(ct.open.ID, ct.unit, ct.open.Charged/ct.unit+1)}
		}
		header, err := ct.header(pr, reqs, &tp)
		if err != nil {
			return nil, err
		}
		if res != nil {
			res.Body.Close()
		}
		res, err = t.paid(req, header)
		if err != nil {
			return nil, err
		}
		if settled(res) {
			n, _ := wire.ParseAtomic(tp.Voucher.MaxClaimableAmount)
			ct.open.Charged, ct.open.Vouchers = n, ct.open.Vouchers+1
			ct.open.ChainHead = wire.ChainNext(ct.open.ChainHead, n, tp.Voucher.Preimage)
			return res, nil
		}
		if res.StatusCode != http.StatusPaymentRequired {
			return res, nil
		}
		if deposit > 0 && res.Header.Get(wire.HeaderPaymentResponse) != "" {
			t.release(deposit) // the deposit did not settle
			ct.open = nil
			return res, nil
		}
		if !t.resync(ct, res) {
			return res, nil
		}
	}
	return res, nil
}

// resync follows a corrective 402: the seller's count of the open tab, or
// a new tab when the seller says this one is spent or unknown. It reports
// whether to try again.
func (t *Transport) resync(ct *clientTab, res *http.Response) bool {
	var pr PaymentRequired
	if wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentRequired), &pr) != nil {
		return false
	}
	switch pr.Error {
	case wire.ReasonTabExhausted, wire.ReasonTabUnknown:
		ct.open = nil
		return true
	case wire.ReasonCumulativeMismatch:
	default:
		return false
	}
	for _, a := range pr.Accepts {
		raw, ok := a.Extra[wire.ExtensionTab]
		if a.Scheme != wire.SchemeBatch || !ok || ct.open == nil {
			continue
		}
		b, _ := json.Marshal(raw)
		var st wire.TabState
		if json.Unmarshal(b, &st) != nil || st.ChannelID != ct.open.ID {
			continue
		}
		n, err := wire.ParseAtomic(st.ChargedCumulativeAmount)
		if err != nil || n > ct.open.Balance || n%ct.unit != 0 || n/ct.unit > ct.chain.Length() {
			return false
		}
		ct.open.Charged, ct.open.ChainHead = n, st.ChainHead
		return true
	}
	return false
}

// depositFor is the deposit t makes with a seller: TabDeposit, or the
// seller's minDeposit if larger, rounded up to a whole minor unit.
func (t *Transport) depositFor(reqs PaymentRequirements) int64 {
	d := t.TabDeposit
	if s, ok := reqs.Extra["minDeposit"].(string); ok {
		if n, err := wire.ParseAtomic(s); err == nil && n > d {
			d = n
		}
	}
	minor, _, err := wire.MinorUnits(d, reqs.Asset)
	if err != nil {
		return 0
	}
	d, _ = wire.AtomicUnits(minor, reqs.Asset)
	return d
}
