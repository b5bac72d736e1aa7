package x402

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paybound/paybound/x402/wire"
)

// Price is what a request costs.
type Price struct {
	// Scheme is wire.SchemeExact (the default) or wire.SchemeUpto, where
	// Amount is the most the request may cost and the handler says what
	// it did cost with Charge.
	Scheme string
	// Amount in atomic units (10^-6 of Asset's major unit).
	Amount int64
	// Asset is an ISO 4217 code.
	Asset       string
	Description string
	MimeType    string
}

// PriceFunc prices a request; ok false serves it free.
type PriceFunc func(r *http.Request) (p Price, ok bool)

// Fixed prices every request at amount atomic units of asset.
func Fixed(amount int64, asset, description string) PriceFunc {
	return func(*http.Request) (Price, bool) {
		return Price{Amount: amount, Asset: asset, Description: description}, true
	}
}

// Middleware is a seller's paywall (net/http). A request without a payment
// is answered 402 with PAYMENT-REQUIRED; one with a payment
// (PAYMENT-SIGNATURE, or v1's X-PAYMENT) that matches the price is
// verified by the facilitator, served into a buffer, and settled only if
// the handler succeeded (status below 400): the buffered answer is
// released, with PAYMENT-RESPONSE, only once the settlement succeeded. A
// handler that failed charges nothing; a settlement that failed serves
// nothing (402 with the reason); a settlement whose outcome is unknown
// (the facilitator unreachable, its answer malformed, or settlement_pending)
// is answered 503 with Retry-After, so the client sends the same payment
// again and the facilitator answers the one settlement.
type Middleware struct {
	// Network is the facilitator's network ("paybound:<instance>").
	Network string
	// PayTo is the seller: a Paybound merchant ID.
	PayTo       string
	Facilitator Facilitator
	Price       PriceFunc
	// PublicURL, when set, is the base of resource URLs (scheme and host
	// as clients reach the server); else they are built from the request.
	PublicURL string
	// MaxTimeoutSeconds is how long a payment may take (default 60).
	MaxTimeoutSeconds int
	// MaxBuffer bounds a paid answer held until settlement (default 8 MiB):
	// a larger one is refused with 500 and not charged.
	MaxBuffer int
	Logger    *slog.Logger
	// Tabs, when set, lets payers pay exact routes with tabs.
	Tabs *Tabs
	// Now is the clock a tab's end is checked against (nil: time.Now).
	Now func() time.Time

	tabState tabState
	answers  answerCache
	payloads payloadPrefixes
}

// payloadPrefixes are the parsed PaymentPayloads of tab payments up to
// their payload, by the bytes of their JSON up to it: a payer's vouchers
// differ from one request to the next only in the payload, so the rest of
// the document is parsed once per payer and resource, not per request.
type payloadPrefixes struct {
	mu sync.RWMutex
	m  map[string]*PaymentPayload
}

// maxPayloadPrefixes bounds the prefixes a Middleware keeps; past it, it
// starts over.
const maxPayloadPrefixes = 1024

var payloadKey = []byte(`"payload":`)

// decodePayment decodes a PAYMENT-SIGNATURE into pl as wire.DecodeHeader
// does. For a Middleware with tabs, a document whose bytes up to its last
// "payload": are those of a tab payment parsed before, and which ends
// right after that payload's value (one JSON value, then the closing
// brace), is read as that payment with this payload: what a full parse
// would give, since the parser is in the same state after the same bytes.
// Only prefixes whose full parse ended that way are kept.
func (m *Middleware) decodePayment(header string, pl *PaymentPayload) error {
	if m.Tabs == nil {
		return wire.DecodeHeader(header, pl)
	}
	raw, err := wire.HeaderBytes(header)
	if err != nil {
		return err
	}
	i := bytes.LastIndex(raw, payloadKey)
	cut := i + len(payloadKey)
	tail := i > 0 && raw[len(raw)-1] == '}'
	if tail {
		m.payloads.mu.RLock()
		p := m.payloads.m[string(raw[:cut])]
		m.payloads.mu.RUnlock()
		if p != nil && json.Valid(raw[cut:len(raw)-1]) {
			*pl = *p
			pl.Payload = raw[cut : len(raw)-1]
			return nil
		}
	}
	if err := wire.DecodeHeaderBytes(raw, pl); err != nil {
		return err
	}
	if tail && pl.Accepted.Scheme == wire.SchemeBatch && bytes.Equal(pl.Payload, raw[cut:len(raw)-1]) {
		p := *pl
		p.Payload = nil
		m.payloads.mu.Lock()
		if m.payloads.m == nil || len(m.payloads.m) >= maxPayloadPrefixes {
			m.payloads.m = map[string]*PaymentPayload{}
		}
		m.payloads.m[string(raw[:cut])] = &p
		m.payloads.mu.Unlock()
	}
	return nil
}

// answerCache keeps paid answers by payment identifier, so that a client
// that retries a payment gets the answer it paid for without the handler
// running again: same identifier and payload, the stored answer; same
// identifier, another payload, 409 (the payment-identifier extension).
type answerCache struct {
	mu sync.Mutex
	m  map[string]*cachedAnswer
}

type cachedAnswer struct {
	payload [32]byte
	status  int
	header  http.Header
	body    []byte
}

// maxAnswers bounds the answers a Middleware keeps; past it, one is
// forgotten at random (a retry then runs the handler again, and the
// facilitator still settles it once).
const maxAnswers = 4096

func (c *answerCache) get(id string) *cachedAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *answerCache) put(id string, a *cachedAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*cachedAnswer{}
	}
	if len(c.m) >= maxAnswers {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = a
}

// Wrap returns next behind the paywall.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
}

type chargeKey struct{}

// Charge tells the Middleware, from an upto-priced handler, what the
// request did cost (atomic units, at most the price; 0 charges nothing).
// Without it, an upto request costs its price.
func Charge(r *http.Request, amount int64) {
	if c, ok := r.Context().Value(chargeKey{}).(*atomic.Int64); ok {
		c.Store(amount)
	}
}

// requirements are what p asks of a request to resource.
func (m *Middleware) requirements(p Price) PaymentRequirements {
	scheme := p.Scheme
	if scheme == "" {
		scheme = wire.SchemeExact
	}
	timeout := m.MaxTimeoutSeconds
	if timeout <= 0 {
		timeout = 60
	}
	return PaymentRequirements{Scheme: scheme, Network: m.Network, Amount: strconv.FormatInt(p.Amount, 10),
		Asset: p.Asset, PayTo: m.PayTo, MaxTimeoutSeconds: timeout}
}

func (m *Middleware) resource(r *http.Request, p Price) *Resource {
	base := m.PublicURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return &Resource{URL: base + r.URL.Path, Description: p.Description, MimeType: p.MimeType}
}

// paymentHeader returns the request's payment and whether it came in v1's
// header.
func paymentHeader(r *http.Request) (string, bool) {
	if v := r.Header.Get(wire.HeaderPaymentSignature); v != "" {
		return v, false
	}
	v := r.Header.Get(wire.HeaderV1Payment)
	return v, v != ""
}

func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	price, ok := m.Price(r)
	if !ok {
		next.ServeHTTP(w, r)
		return
	}
	reqs := m.requirements(price)
	res := m.resource(r, price)
	header, v1 := paymentHeader(r)
	if header == "" {
		if m.Tabs != nil && reqs.Scheme == wire.SchemeExact {
			m.corrective(w, res, reqs, "PAYMENT-SIGNATURE header is required", nil)
			return
		}
		m.required(w, http.StatusPaymentRequired, res, reqs, "PAYMENT-SIGNATURE header is required", nil)
		return
	}
	var pl PaymentPayload
	if err := m.decodePayment(header, &pl); err != nil {
		m.required(w, http.StatusBadRequest, res, reqs, wire.ReasonInvalidPayload+": "+err.Error(), nil)
		return
	}
	if m.Tabs != nil && reqs.Scheme == wire.SchemeExact && pl.Accepted.Scheme == wire.SchemeBatch {
		tr := reqs // matches reads no Extra: tabRequirements' map is not needed here
		tr.Scheme = wire.SchemeBatch
		if reason := matches(&pl, tr, res); reason != "" {
			m.corrective(w, res, reqs, reason, nil)
			return
		}
		m.serveTab(w, r, next, &pl, price, reqs, res)
		return
	}
	if reason := matches(&pl, reqs, res); reason != "" {
		m.required(w, http.StatusPaymentRequired, res, reqs, reason, nil)
		return
	}
	pid, err := pl.PaymentIdentifier()
	if err != nil {
		m.required(w, http.StatusBadRequest, res, reqs, wire.ReasonInvalidPayload+": "+err.Error(), nil)
		return
	}
	digest := sha256.Sum256([]byte(header))
	if pid != "" {
		if a := m.answers.get(pid); a != nil {
			if a.payload != digest {
				m.required(w, http.StatusConflict, res, reqs, wire.ReasonPaymentIDConflict, nil)
				return
			}
			for k, vs := range a.header {
				w.Header()[k] = vs
			}
			w.WriteHeader(a.status)
			w.Write(a.body)
			return
		}
	}
	ctx := r.Context()
	fr := &FacilitatorRequest{X402Version: wire.Version, PaymentPayload: pl, PaymentRequirements: reqs}
	vr, err := m.Facilitator.Verify(ctx, fr)
	if err != nil {
		m.log().Warn("x402: couldn't verify a payment", "err", err)
		m.pending(w, res, reqs, wire.ReasonUnexpectedVerify, v1)
		return
	}
	if !vr.IsValid {
		m.required(w, http.StatusPaymentRequired, res, reqs, vr.InvalidReason, nil)
		return
	}
	charge := new(atomic.Int64)
	charge.Store(price.Amount)
	buf := &buffered{header: http.Header{}, max: m.MaxBuffer}
	if buf.max <= 0 {
		buf.max = 8 << 20
	}
	next.ServeHTTP(buf, r.WithContext(context.WithValue(ctx, chargeKey{}, charge)))
	if buf.overflow {
		http.Error(w, "the paid answer is larger than the paywall buffers; nothing was charged", http.StatusInternalServerError)
		return
	}
	if buf.status() >= 400 {
		buf.release(w) // the handler failed: nothing is charged
		return
	}
	if reqs.Scheme == wire.SchemeUpto {
		c := charge.Load()
		if c < 0 || c > price.Amount {
			http.Error(w, "the handler charged outside its price; nothing was charged", http.StatusInternalServerError)
			return
		}
		fr.PaymentRequirements.Amount = strconv.FormatInt(c, 10)
	}
	sr, err := m.Facilitator.Settle(ctx, fr)
	switch {
	case err != nil:
		reason := wire.ReasonSettlementPending
		if errors.Is(err, ErrMalformedAnswer) {
			reason = wire.ReasonResponseMalformed
		}
		m.log().Warn("x402: a settlement's outcome is unknown; the answer is withheld", "err", err)
		m.pending(w, res, reqs, reason, v1)
	case sr.ErrorReason == wire.ReasonSettlementPending:
		m.pending(w, res, reqs, sr.ErrorReason, v1)
	case !sr.Success:
		m.required(w, http.StatusPaymentRequired, res, reqs, sr.ErrorReason, sr)
	default:
		setResponse(buf.header, sr, v1)
		if pid != "" {
			m.answers.put(pid, &cachedAnswer{payload: digest, status: buf.status(), header: buf.header.Clone(), body: bytes.Clone(buf.body.Bytes())})
		}
		buf.release(w)
	}
}

// matches says why pl does not pay for reqs at res ("" when it does).
func matches(pl *PaymentPayload, reqs PaymentRequirements, res *Resource) string {
	a := pl.Accepted
	switch {
	case pl.X402Version != wire.Version:
		return wire.ReasonInvalidVersion
	case a.Scheme != reqs.Scheme:
		return wire.ReasonInvalidScheme
	case a.Network != reqs.Network:
		return wire.ReasonInvalidNetwork
	case a.Amount != reqs.Amount || a.Asset != reqs.Asset || a.PayTo != reqs.PayTo:
		return wire.ReasonInvalidRequirements + ": the payment accepted other terms than this resource's"
	case pl.Resource != nil && pl.Resource.URL != res.URL:
		return wire.ReasonInvalidPayload + ": the payment is for another resource"
	}
	return ""
}

func (m *Middleware) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Middleware) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// required answers status with PAYMENT-REQUIRED (and the failed
// settlement's PAYMENT-RESPONSE when there is one).
func (m *Middleware) required(w http.ResponseWriter, status int, res *Resource, reqs PaymentRequirements, reason string, sr *SettlementResponse) {
	pr := PaymentRequired{X402Version: wire.Version, Error: reason, Resource: res, Accepts: []PaymentRequirements{reqs}}
	if h, err := wire.EncodeHeader(pr); err == nil {
		w.Header().Set(wire.HeaderPaymentRequired, h)
	}
	if sr != nil {
		setResponse(w.Header(), sr, false)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"error": reason})
	w.Write(body)
}

// pending answers 503: the payment's outcome is not known yet; the same
// payment is to be sent again.
func (m *Middleware) pending(w http.ResponseWriter, res *Resource, reqs PaymentRequirements, reason string, v1 bool) {
	setResponse(w.Header(), &SettlementResponse{Success: false, ErrorReason: reason, Network: reqs.Network}, v1)
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	body, _ := json.Marshal(map[string]string{"error": reason, "retry": "send the same payment again"})
	w.Write(body)
}

func setResponse(h http.Header, sr *SettlementResponse, v1 bool) {
	v, err := wire.EncodeHeader(sr)
	if err != nil {
		return
	}
	h.Set(wire.HeaderPaymentResponse, v)
	if v1 {
		h.Set(wire.HeaderV1Response, v)
	}
	h.Add("Access-Control-Expose-Headers", wire.HeaderPaymentResponse)
}

// buffered holds a handler's answer until it may be released.
type buffered struct {
	header   http.Header
	code     int
	body     bytes.Buffer
	max      int
	overflow bool
}

func (b *buffered) Header() http.Header { return b.header }
func (b *buffered) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}
func (b *buffered) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	if b.body.Len()+len(p) > b.max {
		b.overflow = true
		return 0, errors.New("x402: the answer is larger than the paywall buffers")
	}
	return b.body.Write(p)
}
func (b *buffered) status() int {
	if b.code == 0 {
		return http.StatusOK
	}
	return b.code
}

func (b *buffered) release(w http.ResponseWriter) {
	for k, vs := range b.header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(b.body.Len()))
	w.WriteHeader(b.status())
	w.Write(b.body.Bytes())
}
