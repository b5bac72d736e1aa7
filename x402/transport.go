package x402

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"

	"github.com/paybound/paybound/x402/wire"
)

// Payer is a buyer agent's identity on Paybound: its Ed25519 key (the one
// registered with the agent) and the mandate it pays under.
type Payer struct {
	Key     ed25519.PrivateKey
	Mandate string
}

// Transport is a buyer agent's http.RoundTripper that pays x402 402s on
// Paybound networks: given a 402 whose PAYMENT-REQUIRED accepts Asset on a
// paybound: network (exact, or upto) within MaxPerRequest, and within
// MaxPerHour of what it paid in the last hour, it signs one authorization
// and sends the request again with it. The same payment (the same signed
// authorization and payment identifier) is sent on every retry of that
// request: after a lost answer or a 503 that says the settlement is
// pending, at most Retries times, so a retry never pays twice. Anything
// else (a 402 it may not pay, another network) is returned as it came.
// A resource it paid before is paid on the first send of the next request
// (as the seller asked last time, saving the 402's round trip); a seller
// that refuses that payment before settling it gets the usual two sends.
// The request's body is replayed, so it is read into memory (1 MiB at
// most) unless the request has GetBody. Safe for concurrent use.
type Transport struct {
	Base  http.RoundTripper // nil: http.DefaultTransport
	Payer Payer
	// Asset is the currency it pays in (ISO 4217).
	Asset string
	// MaxPerRequest and MaxPerHour are its caps, in atomic units of Asset.
	MaxPerRequest, MaxPerHour int64
	// Retries bounds how often a paid request is sent again with the same
	// payment (default 3).
	Retries int
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	// Authorize, when set, signs the authorizations instead of Payer.Key:
	// for a key held elsewhere, or a Paybound server's delegated
	// authorizations (wire.SignDelegated). It is not used for tabs.
	Authorize func(reqs PaymentRequirements, resource string, now time.Time) (*wire.SignedAuthorization, error)

	// TabDeposit, when not 0, pays sellers that accept tabs with one: a
	// deposit of this much (atomic units, or the seller's minDeposit if
	// larger; counted against MaxPerHour) and a voucher per request.
	TabDeposit int64

	mu     sync.Mutex
	spent  []spend // within the last hour, oldest first
	tabs   map[string]*clientTab
	tabLog []*ClientTab
	known  map[string]*PaymentRequired // resource → what it asked when last paid
}

// maxKnown bounds the resources a Transport remembers.
const maxKnown = 1024

func (t *Transport) knownFor(key string) *PaymentRequired {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.known[key]
}

func (t *Transport) remember(key string, pr *PaymentRequired) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pr == nil {
		delete(t.known, key)
		return
	}
	if t.known == nil || len(t.known) >= maxKnown {
		t.known = map[string]*PaymentRequired{}
	}
	t.known[key] = pr
}

type spend struct {
	at     time.Time
	amount int64
}

// ErrCap is returned when a payment asked for is above a cap.
var ErrCap = errors.New("x402: the payment is above the transport's cap")

const maxReplayBody = 1 << 20

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// RoundTrip sends req, paying a 402 as the Transport's doc says.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.GetBody == nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > maxReplayBody {
			return nil, fmt.Errorf("x402: a request body larger than %d bytes needs GetBody to be paid for", maxReplayBody)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	key := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	if pr := t.knownFor(key); pr != nil {
		// A repeat request to a resource paid with a tab: the voucher goes
		// with the first send. If the seller wants something else now, its
		// 402 is followed as a first one would be.
		if reqs, ok := t.chooseTab(pr); ok {
			res, err := t.payTab(req, pr, reqs, nil)
			if err != nil || res.StatusCode != http.StatusPaymentRequired || settled(res) { // a paid answer is not a 402
				return res, err
			}
			res.Body.Close()
			t.remember(key, nil)
		} else if reqs, ok := t.choose(pr); ok {
			// A repeat request to a resource paid exact (or upto): the
			// payment goes with the first send, for what the seller asked
			// last time, which saves the 402's round trip. A refusal
			// before settlement (the seller wants something else now) is
			// followed as a first 402 would be; a failed settlement is the
			// answer, as it would be then.
			res, sent, err := t.payExact(req, pr, reqs, nil)
			if sent && (err != nil || res.StatusCode != http.StatusPaymentRequired || res.Header.Get(wire.HeaderPaymentResponse) != "") {
				return res, err
			}
			if sent {
				res.Body.Close()
			}
			t.remember(key, nil)
		}
	}
	res, err := t.base().RoundTrip(req)
	if err != nil || res.StatusCode != http.StatusPaymentRequired {
		return res, err
	}
	var pr PaymentRequired
	if wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentRequired), &pr) != nil {
		return res, nil
	}
	if reqs, ok := t.chooseTab(&pr); ok {
		res, err := t.payTab(req, &pr, reqs, res)
		if err == nil && settled(res) {
			t.remember(key, &pr)
		}
		return res, err
	}
	reqs, ok := t.choose(&pr)
	if !ok {
		return res, nil
	}
	paidRes, sent, err := t.payExact(req, &pr, reqs, res)
	if !sent {
		return res, nil
	}
	if err == nil && settled(paidRes) {
		t.remember(key, &pr)
	}
	return paidRes, err
}

// payExact pays reqs of pr with one authorization, within the hourly cap,
// and sends req with it (closing first, the 402 answered before); sent is
// false, and nothing was done, when the cap leaves no room.
func (t *Transport) payExact(req *http.Request, pr *PaymentRequired, reqs PaymentRequirements, first *http.Response) (res *http.Response, sent bool, err error) {
	amount, _ := wire.ParseAtomic(reqs.Amount)
	if !t.reserve(amount) {
		return nil, false, nil
	}
	if first != nil {
		first.Body.Close()
	}
	header, err := t.pay(req.Context(), pr, reqs)
	if err != nil {
		t.release(amount)
		return nil, true, err
	}
	res, err = t.paid(req, header)
	if err != nil || !settled(res) {
		t.release(amount)
	}
	return res, true, err
}

// paid sends req with the payment header, again with the same header while
// the answer is lost or pending.
func (t *Transport) paid(req *http.Request, header string) (*http.Response, error) {
	retries := t.Retries
	if retries <= 0 {
		retries = 3
	}
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		r.Header.Set(wire.HeaderPaymentSignature, header)
		res, err := t.base().RoundTrip(r)
		pending := err == nil && res.StatusCode == http.StatusServiceUnavailable && res.Header.Get(wire.HeaderPaymentResponse) != ""
		if (err == nil && !pending) || attempt >= retries || req.Context().Err() != nil {
			return res, err
		}
		if res != nil {
			res.Body.Close()
		}
		wait := time.Duration(attempt+1) * 200 * time.Millisecond
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
	}
}

// settled reports whether res carries a successful settlement.
func settled(res *http.Response) bool {
	if res == nil {
		return false
	}
	var sr struct {
		Success bool `json:"success"` // all a client needs to know, and cheaper to read than SettlementResponse
	}
	return wire.DecodeHeader(res.Header.Get(wire.HeaderPaymentResponse), &sr) == nil && sr.Success
}

// choose picks the first requirements t can pay.
func (t *Transport) choose(pr *PaymentRequired) (PaymentRequirements, bool) {
	if pr.X402Version != wire.Version || pr.Resource == nil {
		return PaymentRequirements{}, false
	}
	for _, r := range pr.Accepts {
		amount, err := wire.ParseAtomic(r.Amount)
		if err != nil || (r.Scheme != wire.SchemeExact && r.Scheme != wire.SchemeUpto) || !wire.ValidNetwork(r.Network) ||
			r.Asset != t.Asset || amount > t.MaxPerRequest || (amount == 0 && r.Scheme == wire.SchemeExact) {
			continue
		}
		return r, true
	}
	return PaymentRequirements{}, false
}

// reserve counts amount against the hourly cap, or reports false.
func (t *Transport) reserve(amount int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	i := 0
	for i < len(t.spent) && now.Sub(t.spent[i].at) >= time.Hour {
		i++
	}
	t.spent = t.spent[i:]
	var sum int64
	for _, s := range t.spent {
		sum += s.amount
	}
	if sum+amount > t.MaxPerHour {
		return false
	}
	t.spent = append(t.spent, spend{now, amount})
	return true
}

// release gives back a reservation of amount (its latest one).
func (t *Transport) release(amount int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.spent) - 1; i >= 0; i-- {
		if t.spent[i].amount == amount {
			t.spent = append(t.spent[:i], t.spent[i+1:]...)
			return
		}
	}
}

// pay signs one authorization for reqs and returns the PAYMENT-SIGNATURE
// header that carries it, with the request's payment identifier
// (WithPaymentID) or a fresh one.
func (t *Transport) pay(ctx context.Context, pr *PaymentRequired, reqs PaymentRequirements) (string, error) {
	pl, err := t.payload(ctx, pr, reqs)
	if err != nil {
		return "", err
	}
	return wire.EncodeHeader(pl)
}

// payload signs one authorization for reqs and returns the PaymentPayload
// that carries it (see pay).
func (t *Transport) payload(ctx context.Context, pr *PaymentRequired, reqs PaymentRequirements) (*PaymentPayload, error) {
	var sa *wire.SignedAuthorization
	var err error
	if t.Authorize != nil {
		sa, err = t.Authorize(reqs, pr.Resource.URL, t.now())
	} else {
		sa, err = Authorize(t.Payer, reqs, pr.Resource.URL, t.now())
	}
	if err != nil {
		return nil, err
	}
	pl, err := Payload(pr, reqs, sa)
	if err != nil {
		return nil, err
	}
	if id, ok := ctx.Value(paymentIDKey{}).(string); ok {
		pl.WithPaymentIdentifier(id)
	}
	return pl, nil
}

type paymentIDKey struct{}

// WithPaymentID makes a Transport pay the requests made with ctx under
// payment identifier id (x402's payment-identifier extension), instead of
// a fresh one: a caller that retries one logical purchase with the same id
// is answered the first payment's outcome by the seller and facilitator,
// or refused (payment_identifier_conflict) if it signed anew, and never
// pays twice. id is 16-128 characters of letters, digits, '_' or '-'.
func WithPaymentID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, paymentIDKey{}, id)
}

// Authorize signs p's authorization to pay reqs for resource, valid from
// 5 s before now for reqs.MaxTimeoutSeconds (at most wire.MaxValidity).
func Authorize(p Payer, reqs PaymentRequirements, resource string, now time.Time) (*wire.SignedAuthorization, error) {
	if len(p.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("x402: the payer has no Ed25519 key")
	}
	timeout := time.Duration(reqs.MaxTimeoutSeconds) * time.Second
	if timeout <= 0 || timeout > wire.MaxValidity-10*time.Second {
		timeout = min(max(timeout, 60*time.Second), wire.MaxValidity-10*time.Second)
	}
	a := wire.Authorization{From: wire.Thumbprint(p.Key.Public().(ed25519.PublicKey)), Mandate: p.Mandate,
		To: reqs.PayTo, Value: reqs.Amount, Asset: reqs.Asset, Resource: resource,
		ValidAfter:  strconv.FormatInt(now.Add(-5*time.Second).Unix(), 10),
		ValidBefore: strconv.FormatInt(now.Add(timeout).Unix(), 10), Nonce: wire.NewNonce()}
	return wire.Sign(p.Key, reqs.Scheme, reqs.Network, a)
}

// Payload is the PaymentPayload that pays reqs of pr with sa, with a fresh
// payment identifier.
func Payload(pr *PaymentRequired, reqs PaymentRequirements, sa *wire.SignedAuthorization) (*PaymentPayload, error) {
	raw, err := jsonMarshal(sa)
	if err != nil {
		return nil, err
	}
	pl := &PaymentPayload{X402Version: wire.Version, Resource: pr.Resource, Accepted: reqs, Payload: raw}
	pl.WithPaymentIdentifier(NewPaymentID())
	return pl, nil
}

// NewPaymentID returns a fresh payment identifier: "pay_", then 26 base32
// digits of 48 bits of milliseconds and 80 random bits (pb.NewID). The
// facilitator keys its idempotency records with it, and keys that begin
// with the time land together in its index.
func NewPaymentID() string {
	return pb.NewID("pay_", time.Now())
}

func jsonMarshal(v any) ([]byte, error) {
	var b strings.Builder
	if err := jsonEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

func jsonEncoder(w io.Writer) *json.Encoder {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	return e
}
