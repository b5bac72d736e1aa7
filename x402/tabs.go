package x402

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/paybound/paybound/x402/wire"
)

// SellerTab is a seller's state of one tab: what the payer deposited
// (Balance, atomic units), what its accepted vouchers charged in all
// (Charged), the latest voucher, their count and hash chain, and whether
// the tab was claimed.
type SellerTab struct {
	ID        string       `json:"id"`
	PayerKey  string       `json:"payerKey"`
	Balance   int64        `json:"balance"`
	Charged   int64        `json:"charged"`
	Voucher   wire.Voucher `json:"voucher"`
	Vouchers  int64        `json:"vouchers"`
	ChainHead string       `json:"chainHead"`
	ExpiresAt int64        `json:"expiresAt"`
	Claimed   bool         `json:"claimed"`
}

// TabStore keeps a seller's tabs durably: a voucher is saved before the
// answer it paid for is released, so a crash loses no earned money.
type TabStore interface {
	// Load returns the latest state of every tab saved.
	Load() ([]SellerTab, error)
	// Save records t durably; it returns once t survives a crash.
	Save(t SellerTab) error
}

// Tabs configures a Middleware's tabs (x402's batch-settlement scheme on
// Paybound): each priced exact route also accepts a tab's cumulative
// voucher, checked here without a call to the facilitator.
type Tabs struct {
	Store TabStore
	// MinDeposit is the deposit suggested to payers (extra.minDeposit,
	// atomic units).
	MinDeposit int64
	// ClaimAbove, when not 0, claims a tab in the background once its
	// vouchers charged this much (atomic units); a tab that can't pay the
	// next request is claimed too.
	ClaimAbove int64
	// Claims is the client the seller claims with: the facilitator's URL
	// and the merchant's API key in its Header.
	Claims *FacilitatorClient
}

// tabState is the seller's tabs in memory, loaded once from the store.
type tabState struct {
	once sync.Once
	err  error
	mu   sync.Mutex
	tabs map[string]*sellerTab
}

type sellerTab struct {
	mu sync.Mutex // held from a voucher's check until its state is saved
	SellerTab
	// unit and held are the commitment's unit and the last preimage
	// (Voucher's), read once: unit 0 until then.
	unit int64
	held [32]byte
}

// chain returns t's unit and last preimage, reading them from its voucher
// the first time; ok is false for a tab without a readable commitment
// (one that can take no more vouchers). The commitment's signature was
// checked when the tab was opened, before it was saved.
func (t *sellerTab) chain() (unit int64, held [32]byte, ok bool) {
	if t.unit > 0 {
		return t.unit, t.held, true
	}
	c := t.Voucher.Commitment
	if c == nil {
		return 0, held, false
	}
	u, err := wire.ParseAtomic(c.Unit)
	held, ok = wire.Preimage(t.Voucher.Preimage)
	if err != nil || u == 0 || !ok {
		return 0, held, false
	}
	t.unit, t.held = u, held
	return u, held, true
}

func (m *Middleware) tabsLoaded() (*tabState, error) {
	st := &m.tabState
	st.once.Do(func() {
		st.tabs = map[string]*sellerTab{}
		ts, err := m.Tabs.Store.Load()
		if err != nil {
			st.err = fmt.Errorf("x402: couldn't load the tabs: %w", err)
			return
		}
		for _, t := range ts {
			st.tabs[t.ID] = &sellerTab{SellerTab: t}
		}
	})
	return st, st.err
}

func (st *tabState) get(id string) *sellerTab {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.tabs[id]
}

// tabRequirements are reqs as a tab pays them.
func (m *Middleware) tabRequirements(reqs PaymentRequirements) PaymentRequirements {
	t := reqs
	t.Scheme = wire.SchemeBatch
	t.Extra = map[string]any{"minDeposit": strconv.FormatInt(max(m.Tabs.MinDeposit, 1), 10)}
	return t
}

func stateOf(t *SellerTab) wire.TabState {
	return wire.TabState{ChannelID: t.ID, ChargedCumulativeAmount: strconv.FormatInt(t.Charged, 10),
		Balance: strconv.FormatInt(t.Balance, 10), ExpiresAt: t.ExpiresAt, ChainHead: t.ChainHead}
}

// corrective answers 402 with the tab's state in the requirements' extra,
// so the client starts again from the seller's count.
func (m *Middleware) corrective(w http.ResponseWriter, res *Resource, reqs PaymentRequirements, reason string, t *SellerTab) {
	tr := m.tabRequirements(reqs)
	if t != nil {
		tr.Extra[wire.ExtensionTab] = stateOf(t)
	}
	pr := PaymentRequired{X402Version: wire.Version, Error: reason, Resource: res, Accepts: []PaymentRequirements{reqs, tr}}
	if h, err := wire.EncodeHeader(pr); err == nil {
		w.Header().Set(wire.HeaderPaymentRequired, h)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusPaymentRequired)
	body, _ := json.Marshal(map[string]string{"error": reason})
	w.Write(body)
}

// serveTab serves a request paid with a tab: a deposit is settled by the
// facilitator first (opening the tab); the voucher must then be the
// payer's, for the tab's count plus this price, within the deposit and
// before the tab's end. The handler runs with the tab locked; its success
// is saved durably (charged, voucher, chain) before the answer is
// released, its failure changes nothing.
func (m *Middleware) serveTab(w http.ResponseWriter, r *http.Request, next http.Handler, pl *PaymentPayload, price Price, reqs PaymentRequirements, res *Resource) {
	st, err := m.tabsLoaded()
	if err != nil {
		m.log().Error("x402: tabs unavailable", "err", err)
		http.Error(w, "tabs are unavailable", http.StatusInternalServerError)
		return
	}
	tp, err := wire.ParseTabPayload(pl.Payload)
	if err != nil {
		m.required(w, http.StatusBadRequest, res, reqs, wire.ReasonInvalidPayload+": "+err.Error(), nil)
		return
	}
	if tp.Type == wire.TabDeposit {
		if !m.deposit(w, r, st, pl, tp, reqs, res) {
			return
		}
	}
	t := st.get(tp.Voucher.ChannelID)
	if t == nil {
		m.corrective(w, res, reqs, wire.ReasonTabUnknown, nil)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	unit, held, ok := t.chain()
	if !ok {
		m.corrective(w, res, reqs, wire.ReasonTabExhausted, &t.SellerTab)
		m.claimSoon(t)
		return
	}
	steps := price.Amount / unit
	v := &tp.Voucher
	n := v.Index * unit
	switch {
	case t.Claimed || m.now().Add(10*time.Second).Unix() >= t.ExpiresAt || t.Charged+price.Amount > t.Balance ||
		t.Voucher.Index+steps > t.Voucher.Commitment.Length || steps > wire.MaxSteps: // a unit too small for this price: another tab
		m.corrective(w, res, reqs, wire.ReasonTabExhausted, &t.SellerTab)
		m.claimSoon(t)
		return
	case price.Amount%unit != 0 || v.Index != t.Voucher.Index+steps || n != t.Charged+price.Amount ||
		v.MaxClaimableAmount != strconv.FormatInt(n, 10):
		m.corrective(w, res, reqs, wire.ReasonCumulativeMismatch, &t.SellerTab)
		return
	case !wire.Follows(v.Preimage, steps, held):
		m.corrective(w, res, reqs, wire.ReasonVoucherPreimage, &t.SellerTab)
		return
	}
	buf := &buffered{header: http.Header{}, max: m.MaxBuffer}
	if buf.max <= 0 {
		buf.max = 8 << 20
	}
	next.ServeHTTP(buf, r)
	if buf.overflow {
		http.Error(w, "the paid answer is larger than the paywall buffers; nothing was charged", http.StatusInternalServerError)
		return
	}
	if buf.status() >= 400 {
		buf.release(w)
		return
	}
	after := t.SellerTab
	after.Charged, after.Vouchers = n, t.Vouchers+1
	after.Voucher.MaxClaimableAmount, after.Voucher.Index, after.Voucher.Preimage = v.MaxClaimableAmount, v.Index, v.Preimage
	after.ChainHead = wire.ChainNext(t.ChainHead, n, v.Preimage)
	if err := m.Tabs.Store.Save(after); err != nil {
		m.log().Error("x402: couldn't save a voucher; the answer is withheld", "tab", t.ID, "err", err)
		http.Error(w, "couldn't record the payment; nothing was charged", http.StatusServiceUnavailable)
		return
	}
	t.SellerTab = after
	t.held, _ = wire.Preimage(v.Preimage)
	setTabResponse(buf.header, reqs.Network, price.Amount, &after)
	buf.release(w)
	if (m.Tabs.ClaimAbove > 0 && after.Charged >= m.Tabs.ClaimAbove) || after.Charged+price.Amount > after.Balance {
		m.claimSoon(t)
	}
}

// setTabResponse sets a tab-paid answer's PAYMENT-RESPONSE: success, the
// price, and the tab's state in its extensions. It is written directly
// (the bytes json.Marshal would write) when every string in it is plain,
// which a Paybound network, tab ID and hex chain head are: this is every
// tab request's answer.
func setTabResponse(h http.Header, network string, amount int64, t *SellerTab) {
	if !plainJSON(network) || !plainJSON(t.ID) || !plainJSON(t.ChainHead) {
		ext, _ := json.Marshal(stateOf(t))
		setResponse(h, &SettlementResponse{Success: true, Network: network, Amount: strconv.FormatInt(amount, 10),
			Extensions: map[string]json.RawMessage{wire.ExtensionTab: ext}}, false)
		return
	}
	b := make([]byte, 0, 320)
	b = append(b, `{"success":true,"transaction":"","network":"`...)
	b = append(b, network...)
	b = append(b, `","amount":"`...)
	b = strconv.AppendInt(b, amount, 10)
	b = append(b, `","extensions":{"`+wire.ExtensionTab+`":{"channelId":"`...)
	b = append(b, t.ID...)
	b = append(b, `","chargedCumulativeAmount":"`...)
	b = strconv.AppendInt(b, t.Charged, 10)
	b = append(b, `","balance":"`...)
	b = strconv.AppendInt(b, t.Balance, 10)
	b = append(b, '"')
	if t.ExpiresAt != 0 {
		b = append(b, `,"expiresAt":`...)
		b = strconv.AppendInt(b, t.ExpiresAt, 10)
	}
	if t.ChainHead != "" {
		b = append(b, `,"chainHead":"`...)
		b = append(b, t.ChainHead...)
		b = append(b, '"')
	}
	b = append(b, "}}}"...)
	h.Set(wire.HeaderPaymentResponse, base64.StdEncoding.EncodeToString(b))
	h.Add("Access-Control-Expose-Headers", wire.HeaderPaymentResponse)
}

// plainJSON reports whether s is written in JSON as it is (letters,
// digits, ':', '_', '-', '.').
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// deposit settles a deposit with the facilitator and adds its tab (a
// replayed deposit's tab is kept as it is). It answers and reports false
// when the deposit did not settle.
func (m *Middleware) deposit(w http.ResponseWriter, r *http.Request, st *tabState, pl *PaymentPayload, tp *wire.TabPayload, reqs PaymentRequirements, res *Resource) bool {
	tr := m.tabRequirements(reqs)
	tr.Extra = nil
	pl.Accepted.Extra = nil
	sr, err := m.Facilitator.Settle(r.Context(), &FacilitatorRequest{X402Version: wire.Version, PaymentPayload: *pl, PaymentRequirements: tr})
	switch {
	case err != nil:
		m.pending(w, res, reqs, wire.ReasonSettlementPending, false)
		return false
	case sr.ErrorReason == wire.ReasonSettlementPending:
		m.pending(w, res, reqs, sr.ErrorReason, false)
		return false
	case !sr.Success:
		m.required(w, http.StatusPaymentRequired, res, reqs, sr.ErrorReason, sr)
		return false
	}
	var ts wire.TabState
	if err := json.Unmarshal(sr.Extensions[wire.ExtensionTab], &ts); err != nil || ts.ChannelID != tp.Voucher.ChannelID {
		m.pending(w, res, reqs, wire.ReasonResponseMalformed, false)
		return false
	}
	balance, err := wire.ParseAtomic(ts.Balance)
	if err != nil {
		m.pending(w, res, reqs, wire.ReasonResponseMalformed, false)
		return false
	}
	pub, err := wire.PublicKeyOf(ts.PayerKey)
	cm := tp.Voucher.Commitment
	if err != nil || cm == nil {
		m.pending(w, res, reqs, wire.ReasonResponseMalformed, false)
		return false
	}
	if _, _, err := cm.Check(pub, ts.ChannelID); err != nil {
		m.required(w, http.StatusPaymentRequired, res, reqs, wire.ReasonVoucherSignature, nil)
		return false
	}
	st.mu.Lock()
	if st.tabs[ts.ChannelID] == nil {
		st.tabs[ts.ChannelID] = &sellerTab{SellerTab: SellerTab{ID: ts.ChannelID, PayerKey: ts.PayerKey, Balance: balance,
			ChainHead: wire.ChainStart(ts.ChannelID), ExpiresAt: ts.ExpiresAt,
			Voucher: wire.Voucher{ChannelID: ts.ChannelID, MaxClaimableAmount: "0", Preimage: cm.Anchor, Commitment: cm}}}
	}
	st.mu.Unlock()
	return true
}

// claimSoon claims t in the background, once.
func (m *Middleware) claimSoon(t *sellerTab) {
	if m.Tabs.Claims == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.ClaimTab(ctx, t.ID); err != nil {
			m.log().Warn("x402: couldn't claim a tab", "tab", t.ID, "err", err)
		}
	}()
}

// ClaimTab claims tab id with the facilitator for what its vouchers
// charged, and saves it claimed. Claiming a claimed tab does nothing.
func (m *Middleware) ClaimTab(ctx context.Context, id string) error {
	st, err := m.tabsLoaded()
	if err != nil {
		return err
	}
	t := st.get(id)
	if t == nil {
		return fmt.Errorf("x402: no tab %s", id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Claimed {
		return nil
	}
	if err := m.Tabs.Claims.ClaimTab(ctx, id, TabClaim{AmountAtomic: t.Charged, Voucher: t.Voucher, Vouchers: t.Vouchers, ChainHead: t.ChainHead}); err != nil {
		return err
	}
	after := t.SellerTab
	after.Claimed = true
	if err := m.Tabs.Store.Save(after); err != nil {
		return err
	}
	t.SellerTab = after
	return nil
}

// ClaimAll claims every tab not yet claimed that charged something: what
// a seller runs when it stops, and after a restart.
func (m *Middleware) ClaimAll(ctx context.Context) error {
	st, err := m.tabsLoaded()
	if err != nil {
		return err
	}
	st.mu.Lock()
	var ids []string
	for id, t := range st.tabs {
		if !t.Claimed && t.Vouchers > 0 {
			ids = append(ids, id)
		}
	}
	st.mu.Unlock()
	var errs []error
	for _, id := range ids {
		errs = append(errs, m.ClaimTab(ctx, id))
	}
	return errors.Join(errs...)
}

// TabClaim is the body of a tab's claim (POST /x402/tabs/{id}/claim).
type TabClaim struct {
	AmountAtomic int64        `json:"amount_atomic"`
	Voucher      wire.Voucher `json:"voucher"`
	Vouchers     int64        `json:"vouchers"`
	ChainHead    string       `json:"chain_head"`
}

// ClaimTab claims tab id (Paybound's facilitator; Header must carry the
// merchant's API key). A tab the facilitator already claimed for the same
// amount answers as claimed.
func (c *FacilitatorClient) ClaimTab(ctx context.Context, id string, claim TabClaim) error {
	h := c.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Idempotency-Key", "claim-"+id+"-"+claim.ChainHead[:min(16, len(claim.ChainHead))])
	cc := *c
	cc.Header = h
	var out struct {
		Status string `json:"status"`
	}
	if err := cc.do(ctx, "POST", "/tabs/"+id+"/claim", claim, &out); err != nil {
		return err
	}
	if out.Status != "claimed" && out.Status != "released" {
		return fmt.Errorf("x402: tab %s is %q after its claim", id, out.Status)
	}
	return nil
}
