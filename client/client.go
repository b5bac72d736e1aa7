// Package client is the Go SDK for Paybound's REST API (DESIGN.md §4).
//
// A Client makes typed calls and returns the root package's types. Every
// POST that creates something or moves money carries an Idempotency-Key, so
// that the client can retry it after a network failure, a 409
// idempotency_in_flight or a 503 without ever applying it twice. API errors
// come back as *paybound.Error: branch on them with paybound.ErrorCode or
// errors.As.
//
//	c := client.New("http://127.0.0.1:8080", os.Getenv("PAYBOUND_KEY"))
//	p, err := c.CreatePayment(ctx, client.CreatePaymentParams{
//		Amount: 1250, Currency: "USD", MerchantID: "mch_…",
//	})
//
// The transparency log can be checked from Go as the paybound command
// checks it: VerifyReceipt checks a payment's receipt offline against the
// log's key, VerifyConsistency checks that a checkpoint extends one seen
// before, and Audit checks a running server's log against its ledger.
package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpsig"
)

// Limits and timeouts of every Client.
const (
	// DefaultTimeout bounds one HTTP attempt (connect, send, read) of the
	// default HTTP client. A call that retries may take up to
	// (MaxRetries+1)×DefaultTimeout plus the backoff between attempts; bound
	// it with ctx.
	DefaultTimeout = 30 * time.Second
	// MaxRetries is how many times a call is repeated after its first
	// attempt, for the failures that are safe to repeat.
	MaxRetries = 3
	// MaxRetryDelay caps each wait between attempts, including a server's
	// Retry-After.
	MaxRetryDelay = 2 * time.Second
	// MaxResponseBytes bounds how much of a response body is read (4 MiB).
	MaxResponseBytes = 4 << 20

	// baseRetryDelay is the first backoff step; each retry doubles it.
	baseRetryDelay   = 100 * time.Millisecond
	defaultUserAgent = "paybound-go"
)

// ErrBadResponse is wrapped by the error of a call whose response the
// client cannot read: a body that is not the JSON the API promises (an HTML
// page from a proxy, a truncated body), or one larger than MaxResponseBytes.
// The request may have taken effect; repeat a POST only with the same
// Idempotency-Key (see WithIdempotencyKey).
var ErrBadResponse = errors.New("paybound: unreadable response")

// Client calls one Paybound server with one API key. It is safe for
// concurrent use; it holds no per-call state.
type Client struct {
	baseURL   string
	apiKey    string
	hc        *http.Client
	userAgent string
	// agentKey and keyID sign every request (RFC 9421) instead of the
	// bearer key, when set.
	agentKey ed25519.PrivateKey
	keyID    string
	// delegationKey signs delegate_payment's Signature when the client
	// authenticates with a bearer key (WithDelegationKey).
	delegationKey ed25519.PrivateKey
}

// WithAgentKey makes the Client sign every request as an agent with key
// (HTTP Message Signatures, Web Bot Auth profile) instead of sending a
// bearer key: keyID is the RFC 7638 thumbprint of its public key, as
// returned when the agent was created. Each attempt, retries included, is
// signed afresh with a new nonce.
func WithAgentKey(keyID string, key ed25519.PrivateKey) Option {
	return func(c *Client) { c.keyID, c.agentKey = keyID, key }
}

// Option configures a Client in New.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc instead of a
// client with DefaultTimeout that does not follow redirects. A nil hc is
// ignored.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithUserAgent sets the User-Agent header of every request; an empty
// string keeps the default.
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// New returns a Client for the server at baseURL (such as
// "http://127.0.0.1:8080", without /v1) that authenticates with apiKey as
// "Authorization: Bearer <apiKey>". An empty apiKey sends no Authorization
// header, which only Health accepts. New does no I/O; a malformed baseURL is
// reported by the first call.
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{
		baseURL: strings.TrimRight(baseURL, "/"),
		apiKey:  apiKey,
		hc: &http.Client{
			Timeout: DefaultTimeout,
			// The API never redirects; following one would turn a POST into a
			// GET, or send the key to another path.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		userAgent: defaultUserAgent,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// idemKey is the context key of WithIdempotencyKey.
type idemKey struct{}

// WithIdempotencyKey returns a context under which every POST sends key as
// its Idempotency-Key instead of a fresh one. Use it to retry an
// operation across calls or processes: the server answers the same key and
// body with the stored response (even a failure), and answers the same key
// with another body with a 422 idempotency_conflict, so give each distinct
// operation its own key. An empty key restores the default.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idemKey{}, key)
}

// idempotencyKey returns the key that ctx carries, or a fresh one: 48 bits
// of milliseconds, then 80 random bits (pb.NewID). Keys that begin with the
// time land together in the server's index of keys, where random ones
// dirty a page each (migration 0021).
func idempotencyKey(ctx context.Context) string {
	if k, _ := ctx.Value(idemKey{}).(string); k != "" {
		return k
	}
	return pb.NewID("", time.Now())
}

// NewUser is a created user with its API key. The key is shown only in this
// response; the server keeps just its hash.
type NewUser struct {
	pb.User
	APIKey string `json:"api_key"`
}

// NewMerchant is a created merchant with its API key, shown only once.
type NewMerchant struct {
	pb.Merchant
	APIKey string `json:"api_key"`
}

// NewAgent is a created agent with its API key, shown only once.
type NewAgent struct {
	pb.Agent
	APIKey string `json:"api_key"`
}

// CreatePaymentParams is a payment request. Amount is in minor units of
// Currency (1250 is 12.50 USD); use paybound.ParseAmount to convert a
// decimal.
type CreatePaymentParams struct {
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	MerchantID string `json:"merchant_id"`
	// Description is shown to the payer and the merchant (at most 1000 bytes).
	Description string `json:"description,omitempty"`
	// MandateID names the mandate an agent pays under, when there is one.
	MandateID string `json:"mandate_id,omitempty"`
	// CaptureMethod is automatic (the default: captured at once) or manual
	// (an authorization the merchant captures later).
	CaptureMethod pb.CaptureMethod `json:"capture_method,omitempty"`
	// AuthorizationExpiresAt, if set, replaces the default hold expiry; it
	// must lie between paybound.MinAuthorizationTTL and
	// paybound.MaxAuthorizationTTL from now.
	AuthorizationExpiresAt *time.Time        `json:"authorization_expires_at,omitempty"`
	Metadata               map[string]string `json:"metadata,omitempty"`
	// Provenance is where an agent took the payee and the amount from;
	// risk control weighs a payee or amount from content the agent read.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Provenance values are paybound.ProvenanceUser (the user said so),
// ProvenanceUntrusted (a page, an email, a post the agent read) or
// ProvenanceUnknown (the default).
type Provenance struct {
	Payee  string `json:"payee,omitempty"`
	Amount string `json:"amount,omitempty"`
}

// ListParams selects a page of a list. Zero values take the server's
// defaults: 10 items from the newest.
type ListParams struct {
	// Limit is the page size, 1 to paybound.MaxListLimit.
	Limit int
	// StartingAfter is the last ID of the previous page.
	StartingAfter string
}

// PaymentList is one page of payments, newest first. When HasMore is true,
// the next page starts after the last element of Data.
type PaymentList struct {
	Object  string       `json:"object"`
	Data    []pb.Payment `json:"data"`
	HasMore bool         `json:"has_more"`
}

// Report is the outcome of VerifyLedger: every balance recomputed from the
// ledger's transfers and compared with the stored one.
type Report struct {
	// OK is true when no problem was found: every currency sums to zero and
	// every stored balance matches its transfers.
	OK               bool          `json:"ok"`
	Currencies       []CurrencySum `json:"currencies"`
	AccountsChecked  int           `json:"accounts_checked"`
	TransfersChecked int           `json:"transfers_checked"`
	// Problems describes each disagreement found (at most 100); empty when OK.
	Problems []string `json:"problems"`
}

// CurrencySum is the net of all balances of one currency, in minor units:
// zero in a sound ledger, posted and pending alike.
type CurrencySum struct {
	Currency   string `json:"currency"`
	Sum        int64  `json:"sum"`
	PendingSum int64  `json:"pending_sum"`
}

// CreateUser creates a user and its API key. It needs the operator's key.
func (c *Client) CreateUser(ctx context.Context, name string) (*NewUser, error) {
	var out NewUser
	in := struct {
		Name string `json:"name"`
	}{name}
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/users", in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateMerchant creates a merchant and its API key. It needs the
// operator's key. An empty category is stored as "general".
func (c *Client) CreateMerchant(ctx context.Context, name, category string) (*NewMerchant, error) {
	var out NewMerchant
	in := struct {
		Name     string `json:"name"`
		Category string `json:"category,omitempty"`
	}{name, category}
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/merchants", in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateAgent registers an agent acting for the calling user (it needs a
// user's key) and returns the agent's API key. publicKeyJWK, when not
// empty, is the agent's Ed25519 public key as a JWK
// ({"kty":"OKP","crv":"Ed25519","x":"…"}); the agent's keyid is its RFC 7638
// thumbprint. A publicKeyJWK that is not JSON is refused before sending,
// with a *paybound.Error of code parameter_invalid.
func (c *Client) CreateAgent(ctx context.Context, name string, publicKeyJWK json.RawMessage) (*NewAgent, error) {
	if len(publicKeyJWK) > 0 && !json.Valid(publicKeyJWK) {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "public_key", "public_key must be a JSON object (an Ed25519 JWK)")
	}
	var out NewAgent
	in := struct {
		Name      string          `json:"name"`
		PublicKey json.RawMessage `json:"public_key,omitempty"`
	}{name, publicKeyJWK}
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/agents", in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Topup funds the calling user's wallet with amount minor units of currency
// from the sandbox funding rail.
func (c *Client) Topup(ctx context.Context, amount int64, currency string) (*pb.Topup, error) {
	var out pb.Topup
	in := struct {
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
	}{amount, currency}
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/topups", in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Fund (operator) credits user's wallet with amount minor units of currency
// that arrived from outside Paybound; reference names that movement.
func (c *Client) Fund(ctx context.Context, user string, amount int64, currency, reference string) (*pb.Topup, error) {
	var out pb.Topup
	in := struct {
		Amount    int64  `json:"amount"`
		Currency  string `json:"currency"`
		Reference string `json:"reference"`
	}{amount, currency, reference}
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/users/" + url.PathEscape(user) + "/fundings", in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Balance returns the caller's balances, one per currency held (a user's
// wallet or a merchant's account).
func (c *Client) Balance(ctx context.Context) ([]pb.Balance, error) {
	var out struct {
		Balances []pb.Balance `json:"balances"`
	}
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/balance", out: &out}); err != nil {
		return nil, err
	}
	return out.Balances, nil
}

// CreatePayment pays a merchant from the payer's wallet, as a user or an
// agent. It returns the payment: captured, or authorized when
// CaptureMethod is manual.
//
// A declined payment is still recorded: CreatePayment then returns a nil
// payment and a *paybound.Error of type payment_declined whose PaymentID
// names it (fetch it with GetPayment).
func (c *Client) CreatePayment(ctx context.Context, p CreatePaymentParams) (*pb.Payment, error) {
	var out pb.Payment
	if err := c.call(ctx, call{method: http.MethodPost, path: "/v1/payments", in: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetPayment returns payment id, if the caller is a party to it; otherwise
// a resource_missing error, as if it did not exist.
func (c *Client) GetPayment(ctx context.Context, id string) (*pb.Payment, error) {
	path, err := paymentPath(id, "")
	if err != nil {
		return nil, err
	}
	var out pb.Payment
	if err := c.call(ctx, call{method: http.MethodGet, path: path, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPayments returns one page of the payments the caller is a party to,
// newest first.
func (c *Client) ListPayments(ctx context.Context, p ListParams) (*PaymentList, error) {
	q := url.Values{}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	var out PaymentList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/payments", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Confirmation is a payment waiting for its user's approval.
type Confirmation struct {
	ID        string     `json:"id"`
	Object    string     `json:"object"`
	Status    string     `json:"status"`
	URL       string     `json:"url"`
	ExpiresAt time.Time  `json:"expires_at"`
	Payment   pb.Payment `json:"payment"`
}

// ConfirmationList is one page of pending confirmations, newest first.
type ConfirmationList struct {
	Object  string         `json:"object"`
	Data    []Confirmation `json:"data"`
	HasMore bool           `json:"has_more"`
}

// PendingConfirmations lists the payments waiting for the calling user's
// approval; p.StartingAfter is a confirmation ID.
func (c *Client) PendingConfirmations(ctx context.Context, p ListParams) (*ConfirmationList, error) {
	q := url.Values{"status": {"pending"}}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	var out ConfirmationList
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/confirmations", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Capture captures amount minor units (nil: all) of an authorized payment
// and releases the rest of the hold. It needs the merchant's key. A payment
// that is not authorized (already captured, canceled, expired) gives a
// payment_unexpected_state error.
func (c *Client) Capture(ctx context.Context, id string, amount *int64) (*pb.Payment, error) {
	path, err := paymentPath(id, "/capture")
	if err != nil {
		return nil, err
	}
	in := struct {
		Amount *int64 `json:"amount,omitempty"`
	}{amount}
	var out pb.Payment
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Cancel voids an authorized payment's hold, as its merchant or payer.
func (c *Client) Cancel(ctx context.Context, id string) (*pb.Payment, error) {
	path, err := paymentPath(id, "/cancel")
	if err != nil {
		return nil, err
	}
	var out pb.Payment
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: struct{}{}, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Refund returns amount minor units (nil: all not yet refunded) of a
// captured payment to the payer. It needs the merchant's key. reason is
// optional (at most 500 bytes).
func (c *Client) Refund(ctx context.Context, id string, amount *int64, reason string) (*pb.Refund, error) {
	path, err := paymentPath(id, "/refunds")
	if err != nil {
		return nil, err
	}
	in := struct {
		Amount *int64 `json:"amount,omitempty"`
		Reason string `json:"reason,omitempty"`
	}{amount, reason}
	var out pb.Refund
	if err := c.call(ctx, call{method: http.MethodPost, path: path, in: in, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyLedger asks the server to recompute every balance from the ledger's
// transfers. It needs the operator's key. A ledger that fails the check is
// not an error of the call: it returns a Report with OK false and its
// Problems.
func (c *Client) VerifyLedger(ctx context.Context) (*Report, error) {
	var out Report
	if err := c.call(ctx, call{method: http.MethodGet, path: "/v1/ledger/verify", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health returns nil when the server is ready to take writes. It needs no
// key and, unlike the other calls, does not retry: a server that is not
// ready answers with a *paybound.Error of code unavailable at once, so a
// caller can poll.
func (c *Client) Health(ctx context.Context) error {
	var out struct {
		Status string `json:"status"`
	}
	if err := c.call(ctx, call{method: http.MethodGet, path: "/healthz", out: &out, noRetry: true}); err != nil {
		return err
	}
	if out.Status != "ok" {
		return fmt.Errorf("%w: GET /healthz answered status %q, want \"ok\"", ErrBadResponse, out.Status)
	}
	return nil
}

// paymentPath returns /v1/payments/{id}{suffix}, refusing an empty ID before
// it can turn into another route.
// resourcePath is /v1/<collection>/<id><suffix>, or, when id is empty, a
// parameter_missing error saying what is required (what: "a payment ID
// (pay_…)"), before anything is sent.
func resourcePath(collection, what, id, suffix string) (string, error) {
	if id == "" {
		return "", pb.Errorf(pb.ErrParameterMissing, "id", "%s is required", what)
	}
	return "/v1/" + collection + "/" + url.PathEscape(id) + suffix, nil
}

func paymentPath(id, suffix string) (string, error) {
	return resourcePath("payments", "a payment ID (pay_…)", id, suffix)
}

// call is one API request as the retry loop sees it.
type call struct {
	method, path string
	query        url.Values
	in, out      any // in is sent as JSON when not nil; out receives a 2xx body
	noRetry      bool
	// header, when set, adds headers to each attempt (before it is
	// signed), given the exact body sent.
	header func(h http.Header, body []byte) error
	// bearer: authenticate with the bearer key even on a client that
	// signs its requests (delegate_payment, whose Signature header is not
	// RFC 9421's).
	bearer bool
	// acp: the endpoint is ACP's, whose errors are ACP's flat shape
	// (*ACPError) rather than Paybound's envelope.
	acp bool
}

// call sends the request, retrying what is safe to retry, and decodes a 2xx
// body into k.out or a non-2xx body into a *pb.Error.
//
// A POST is retried only with an Idempotency-Key, always the same one, so
// that the server applies it at most once: after a network error (the
// request may or may not have arrived), a 409 idempotency_in_flight (the
// first attempt is still running) or a 503 (the server could not take
// writes). GETs are retried on the same conditions.
func (c *Client) call(ctx context.Context, k call) error {
	var body []byte
	if k.in != nil {
		var err error
		if body, err = json.Marshal(k.in); err != nil {
			return fmt.Errorf("couldn't encode the request to %s %s: %w", k.method, k.path, err)
		}
	}
	var key string
	if k.method == http.MethodPost {
		key = idempotencyKey(ctx)
	}
	u := c.baseURL + k.path
	if len(k.query) > 0 {
		u += "?" + k.query.Encode()
	}
	// Never retry a POST without a key: it could be applied twice.
	retryable := !k.noRetry && (k.method != http.MethodPost || key != "")
	for attempt := 0; ; attempt++ {
		wait, again, err := c.attempt(ctx, k, u, body, key)
		if err == nil {
			return nil
		}
		if !again || !retryable || attempt >= MaxRetries || ctx.Err() != nil {
			return err
		}
		if wait < 0 {
			wait = backoff(attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gave up retrying %s %s: %w (last error: %w)", k.method, k.path, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// attempt makes one HTTP exchange. again reports whether the failure is one
// that may be retried, and wait how long the server asked to wait (-1: it
// did not say).
func (c *Client) attempt(ctx context.Context, k call, u string, body []byte, key string) (wait time.Duration, again bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u, rd)
	if err != nil {
		return -1, false, fmt.Errorf("couldn't build the request %s %s: %w", k.method, k.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if k.header != nil {
		if err := k.header(req.Header, body); err != nil {
			return -1, false, err
		}
	}
	if c.agentKey != nil && !k.bearer {
		if err := c.sign(req, body, key != ""); err != nil {
			return -1, false, err
		}
	} else if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return -1, true, fmt.Errorf("couldn't %s %s: %w", k.method, k.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return -1, true, fmt.Errorf("couldn't read the response to %s %s: %w", k.method, k.path, err)
	}
	if len(data) > MaxResponseBytes {
		return -1, false, fmt.Errorf("%w: %s %s answered %s with more than %d bytes", ErrBadResponse, k.method, k.path, resp.Status, MaxResponseBytes)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if k.out == nil {
			return 0, false, nil
		}
		if raw, ok := k.out.(*[]byte); ok { // text or exact bytes, as sent
			*raw = data
			return 0, false, nil
		}
		if err := json.Unmarshal(data, k.out); err != nil {
			return -1, false, fmt.Errorf("%w: %s %s answered %s with a body that is not the expected JSON (%v): %s",
				ErrBadResponse, k.method, k.path, resp.Status, err, snippet(data))
		}
		return 0, false, nil
	}
	if k.acp {
		e, ok := acpError(resp, data)
		if !ok {
			return retryAfter(resp), resp.StatusCode == http.StatusServiceUnavailable,
				fmt.Errorf("%w: %s %s answered %s without an ACP error object: %s", ErrBadResponse, k.method, k.path, resp.Status, snippet(data))
		}
		again = resp.StatusCode == http.StatusServiceUnavailable ||
			(resp.StatusCode == http.StatusConflict && e.Code == string(pb.ErrIdempotencyRunning))
		return retryAfter(resp), again, e
	}
	var env struct {
		Error *pb.Error `json:"error"`
	}
	if jerr := json.Unmarshal(data, &env); jerr != nil || env.Error == nil || env.Error.Code == "" {
		return retryAfter(resp), resp.StatusCode == http.StatusServiceUnavailable,
			fmt.Errorf("%w: %s %s answered %s without a Paybound error object: %s", ErrBadResponse, k.method, k.path, resp.Status, snippet(data))
	}
	again = resp.StatusCode == http.StatusServiceUnavailable ||
		(resp.StatusCode == http.StatusConflict && env.Error.Code == pb.ErrIdempotencyRunning)
	return retryAfter(resp), again, env.Error
}

// retryAfter reads a Retry-After header in seconds, capped at MaxRetryDelay;
// -1 when there is none (or it is an HTTP date, which the API never sends).
func retryAfter(resp *http.Response) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After")))
	if err != nil || s < 0 {
		return -1
	}
	return min(time.Duration(s)*time.Second, MaxRetryDelay)
}

// backoff is the wait before retry attempt+1: exponential from
// baseRetryDelay, with jitter so that clients that failed together do not
// retry together, capped at MaxRetryDelay.
func backoff(attempt int) time.Duration {
	d := min(baseRetryDelay<<attempt, MaxRetryDelay)
	return d/2 + mrand.N(d/2+1)
}

// snippet quotes the start of a body for an error message.
func snippet(b []byte) string {
	const limit = 200
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(empty body)"
	}
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "…"
	}
	return strconv.Quote(string(b))
}

// sign adds Content-Digest and the request's signature.
func (c *Client) sign(req *http.Request, body []byte, idem bool) error {
	components := []string{"@method", "@authority", "@path"}
	if len(body) > 0 {
		req.Header.Set("Content-Digest", httpsig.ContentDigest(body))
		components = append(components, "content-digest")
	}
	if idem {
		components = append(components, "idempotency-key")
	}
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	now := time.Now()
	scheme := req.URL.Scheme
	return httpsig.Sign(req, scheme, "sig1", httpsig.Params{Components: components, Created: now,
		Expires: now.Add(time.Minute), Nonce: base64.StdEncoding.EncodeToString(nonce), KeyID: c.keyID,
		Alg: "ed25519", Tag: "web-bot-auth"}, c.agentKey)
}
