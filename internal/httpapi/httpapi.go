// Package httpapi serves Paybound's public REST API (DESIGN.md §4) over
// net/http: authentication, request decoding with limits, idempotency keys,
// and the one table that maps error codes to HTTP statuses.
package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/httpsig"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// MaxBodyBytes bounds every request body (1 MiB).
const MaxBodyBytes = 1 << 20

// preallocMax is the most of a body's announced length that readBody
// allocates before the bytes arrive.
const preallocMax = 256 << 10

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3.1 document.
func OpenAPI() []byte { return openAPI }

// Server is the REST API.
type Server struct {
	svc     *service.Service
	signed  SignedAuthenticator
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // mux, observed (observe.go)
	routes  []Route
	metrics metrics
}

// Route is one registered endpoint (see rest.Route).
type Route = rest.Route

// Capability is a capability's part of the API: its routes, mounted next
// to the core's.
type Capability interface {
	Routes() []rest.Route
}

// SignedAuthenticator authenticates an agent's request signed with HTTP
// Message Signatures (RFC 9421), from the request as signed: agent
// identity (internal/agentid).
type SignedAuthenticator interface {
	Authenticate(ctx context.Context, m httpsig.Message) (pb.Principal, error)
	// Verify is Authenticate but for the nonce, left to spend as a claim
	// that Settle must end before the request is answered.
	Verify(ctx context.Context, m httpsig.Message) (pb.Principal, *ledger.NonceClaim, error)
	Settle(ctx context.Context, c *ledger.NonceClaim) error
}

// New builds the API over the payments core svc and the capabilities;
// signed authenticates the requests that carry a signature
// (Signature-Input) instead of an API key, and must be set for a server
// that serves them.
func New(svc *service.Service, log *slog.Logger, signed SignedAuthenticator, capabilities ...Capability) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, signed: signed, log: log, mux: http.NewServeMux()}
	s.handler = s.observe(s.mux)
	s.routes = []Route{
		{Method: "GET", Pattern: "/healthz", Public: true, Handler: s.healthz},
		{Method: "GET", Pattern: "/v1/openapi.json", Public: true, Handler: nil},
		{Method: "POST", Pattern: "/v1/users", Idempotent: true, Secret: true, Handler: s.createUser},
		{Method: "POST", Pattern: "/v1/merchants", Idempotent: true, Secret: true, Handler: s.createMerchant},
		{Method: "POST", Pattern: "/v1/agents", Idempotent: true, Secret: true, Handler: s.createAgent},
		{Method: "POST", Pattern: "/v1/topups", Idempotent: true, Handler: s.topup},
		{Method: "POST", Pattern: "/v1/users/{id}/fundings", Idempotent: true, Handler: s.fund},
		{Method: "GET", Pattern: "/v1/balance", Handler: s.balance},
		{Method: "POST", Pattern: "/v1/payments", Idempotent: true, OneOp: true, Handler: s.createPayment},
		{Method: "GET", Pattern: "/v1/payments", Handler: s.listPayments},
		{Method: "GET", Pattern: "/v1/payments/{id}", Handler: s.getPayment},
		{Method: "POST", Pattern: "/v1/payments/{id}/capture", Idempotent: true, OneOp: true, Handler: s.capture},
		{Method: "POST", Pattern: "/v1/payments/{id}/cancel", Idempotent: true, OneOp: true, Handler: s.cancel},
		{Method: "POST", Pattern: "/v1/payments/{id}/refunds", Idempotent: true, OneOp: true, Handler: s.refund},
		{Method: "GET", Pattern: "/v1/ledger/verify", Handler: s.verify},
	}
	for _, c := range capabilities {
		s.routes = append(s.routes, c.Routes()...)
	}
	allow := map[string][]string{} // pattern → its methods, for 405's Allow
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
		allow[rt.Pattern] = append(allow[rt.Pattern], rt.Method)
	}
	for pattern, methods := range allow {
		if slices.Contains(methods, "GET") {
			methods = append(methods, "HEAD") // ServeMux answers HEAD with GET's handler
		}
		slices.Sort(methods)
		allowed := strings.Join(methods, ", ")
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allowed)
			rest.WriteError(w, s.log, pb.Errorf(pb.ErrMethod, "", "%s is not allowed on %s; use %s", r.Method, pattern, allowed))
		})
	}
	s.mux.HandleFunc("GET /metrics", s.metricsRoute)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		rest.WriteError(w, s.log, pb.Errorf(pb.ErrRouteNotFound, "", "no route %s %s; see /v1/openapi.json", r.Method, r.URL.Path))
	})
	return s
}

// Routes lists every registered endpoint.
func (s *Server) Routes() []Route { return s.routes }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// wrap adapts a Route to net/http: admit the request, run the handler,
// respond. Every refusal is a coded error written by rest.WriteError.
func (s *Server) wrap(rt Route) http.Handler {
	if rt.Handler == nil { // the OpenAPI document
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rest.WriteRaw(w, 200, openAPIFor(r)) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := &rest.Request{HTTP: r, Ctx: r.Context(), Log: s.log}
		if rt.Public {
			q.Bearer = func() (pb.Principal, error) { return s.bearer(r) }
		}
		if err := s.admit(w, r, rt, q); err != nil {
			if s.settle(w, r, q) {
				rest.WriteError(w, s.log, err)
			}
			return
		}
		status, v, err := rt.Handler(q)
		if s.settle(w, r, q) {
			s.respond(w, rt, q, status, v, err)
		}
	})
}

// settle ends the nonce claim of a OneOp route's signed request (see
// authenticate), if q has one: nothing is answered before its nonce is
// spent, and a replay is refused whatever the handler made of it. It
// reports whether the request's own answer may go; when not, it wrote the
// refusal.
func (s *Server) settle(w http.ResponseWriter, r *http.Request, q *rest.Request) bool {
	c := ledger.ClaimOf(q.Ctx)
	if c == nil {
		return true
	}
	if err := s.signed.Settle(q.Ctx, c); err != nil {
		s.securityEvent(r, "signature_refused", err)
		rest.WriteError(w, s.log, err)
		return false
	}
	return true
}

// admit runs the checks every request passes before its handler, in this
// order: single headers, the body (POST only), the caller, the
// Idempotency-Key. It fills q.Body, q.Caller and q.Idem, and returns the
// first refusal, a coded error for the caller to write; refused credentials
// are logged as security events here.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, rt Route, q *rest.Request) error {
	if err := singleHeaders(r); err != nil {
		return err
	}
	if r.Method == http.MethodPost {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		q.Body = body
	}
	if err := s.authenticate(r, rt, q); err != nil {
		return err
	}
	noteCaller(r.Context(), q.Caller)
	return s.idempotency(r, rt, q)
}

// readBody reads a POST body of at most MaxBodyBytes and checks that it is
// declared as JSON. It returns ErrBodyTooLarge past the limit, ErrInvalidJSON
// when the body can't be read, or checkContentType's refusal.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// Read into a buffer of the announced length, not one io.ReadAll
	// regrows: a batch of usage events is some 100 KB. Up to preallocMax
	// only, so that a client announcing a large body it sends slowly holds
	// no more memory than it has sent. (ReadFrom keeps bytes.MinRead free
	// before each read, the one that meets the end included.)
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), preallocMax)+bytes.MinRead))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	body := buf.Bytes()
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, pb.Errorf(pb.ErrBodyTooLarge, "", "the body is larger than %d bytes", MaxBodyBytes)
		}
		return nil, pb.Errorf(pb.ErrInvalidJSON, "", "couldn't read the body: %v", err)
	}
	if err := checkContentType(r.Header.Values("Content-Type"), body); err != nil {
		return nil, err
	}
	return body, nil
}

// authenticate sets q.Caller on a route that is not public: from the HTTP
// message signature when the request is signed and sends no Authorization
// header, else from the bearer token. A public route is left anonymous. A
// refusal is logged as a security event and returned as is. On a OneOp
// route a signature's nonce is left to spend: q.Ctx carries it as a claim
// for the route's ledger operation, which settle ends.
func (s *Server) authenticate(r *http.Request, rt Route, q *rest.Request) error {
	if rt.Public {
		return nil
	}
	if r.Header.Get("Signature-Input") != "" && r.Header.Get("Authorization") == "" {
		// A signed agent request: the signature is the credential.
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		m := httpsig.RequestMessage(r, scheme, q.Body)
		if !rt.OneOp {
			p, err := s.signed.Authenticate(q.Ctx, m)
			if err != nil {
				s.securityEvent(r, "signature_refused", err)
				return err
			}
			q.Caller = p
			return nil
		}
		p, c, err := s.signed.Verify(q.Ctx, m)
		if err != nil {
			s.securityEvent(r, "signature_refused", err)
			return err
		}
		q.Caller, q.Ctx = p, ledger.WithNonceClaim(q.Ctx, c)
		return nil
	}
	p, err := s.bearer(r)
	if err != nil {
		s.securityEvent(r, "authentication_failed", err)
		return err
	}
	q.Caller = p
	return nil
}

// idempotency sets q.Idem on an idempotent route from the Idempotency-Key
// header, sealed under the operator key when the route's response is secret.
// It returns ErrIdempotencyRequired without the header and ErrIdempotencyKey
// for one that is too long or not printable ASCII; other routes pass.
func (s *Server) idempotency(r *http.Request, rt Route, q *rest.Request) error {
	if !rt.Idempotent {
		return nil
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return pb.Errorf(pb.ErrIdempotencyRequired, "Idempotency-Key", "this request moves money or creates a resource: send an Idempotency-Key header (a unique string such as a UUID) so that it can be retried safely")
	}
	if len(key) > service.MaxIdempotencyKeyLength || !printable(key) {
		return pb.Errorf(pb.ErrIdempotencyKey, "Idempotency-Key", "Idempotency-Key must be 1-%d printable ASCII characters", service.MaxIdempotencyKeyLength)
	}
	q.Idem = &service.Idempotency{Caller: q.Caller.ID, Key: key}
	if rt.Secret {
		q.Idem.Seal = s.svc.Seal
	}
	return nil
}

// respond writes the handler's outcome. When the ledger writer stored a
// response with the effect (q.Idem.Body), those bytes are written, fresh or
// replayed, whatever the handler returned; a replay of a sealed response that
// the current operator key can't open is refused as ErrIdempotencyConflict.
// Otherwise it writes err (rest.ErrReplayed aside), a rest.Raw body as is, or
// v encoded as JSON.
func (s *Server) respond(w http.ResponseWriter, rt Route, q *rest.Request, status int, v any, err error) {
	if q.Idem != nil && q.Idem.Body != nil {
		// Outcome of the ledger writer: fresh or replayed, the bytes are the
		// ones stored with the effect.
		body := q.Idem.Body
		if err == rest.ErrReplayed {
			if rt.Secret {
				var oerr error
				if body, oerr = s.svc.Open(body); oerr != nil {
					rest.WriteError(w, s.log, pb.Errorf(pb.ErrIdempotencyConflict, "", "the stored response for this Idempotency-Key was sealed under another operator key; use a new key"))
					return
				}
			}
			w.Header().Set("Idempotent-Replayed", "true")
		}
		rest.WriteRaw(w, q.Idem.Status, body)
		return
	}
	if err != nil && err != rest.ErrReplayed {
		rest.WriteError(w, s.log, err)
		return
	}
	if rb, ok := v.(rest.Raw); ok {
		for k, v := range rb.Header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", rb.ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(rb.Body)))
		w.WriteHeader(status)
		w.Write(rb.Body)
		return
	}
	body, merr := json.Marshal(v)
	if merr != nil {
		rest.WriteError(w, s.log, fmt.Errorf("couldn't encode response: %w", merr))
		return
	}
	rest.WriteRaw(w, status, body)
}

// singleHeaders refuses a request that sends Authorization or
// Idempotency-Key twice: Go reads the first, another server or proxy may
// read the last or both, and they would not agree on who asks, or on which
// request a retry repeats.
func singleHeaders(r *http.Request) error {
	if n := len(r.Header.Values("Authorization")); n > 1 {
		return pb.Errorf(pb.ErrParameterInvalid, "Authorization", "send one Authorization header, not %d", n)
	}
	if n := len(r.Header.Values("Idempotency-Key")); n > 1 {
		return pb.Errorf(pb.ErrIdempotencyKey, "Idempotency-Key", "send one Idempotency-Key header, not %d", n)
	}
	return nil
}

// checkContentType refuses a POST body not declared as JSON: one
// Content-Type, application/json, with no parameter but charset=utf-8. A
// body of another type is one that a proxy or a firewall may read as that
// type (a form, say) while Paybound reads JSON, and one a browser sends
// cross-origin without asking first. A POST that sends no Content-Type
// may have no body (cancel, revoke, a capture of the whole hold): there is
// nothing to read in two ways.
func checkContentType(values []string, body []byte) error {
	const want = "send the body as JSON, with Content-Type: application/json"
	switch {
	case len(values) > 1:
		return pb.Errorf(pb.ErrUnsupportedMediaType, "Content-Type", "send one Content-Type header, not %d; %s", len(values), want)
	case len(values) == 0 && len(body) == 0:
		return nil
	case len(values) == 0:
		return pb.Errorf(pb.ErrUnsupportedMediaType, "Content-Type", "the request has a body but no Content-Type; %s", want)
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err == nil && mt == "application/json" {
		cs, ok := params["charset"]
		if len(params) == 0 || (len(params) == 1 && ok && strings.EqualFold(cs, "utf-8")) {
			return nil
		}
	}
	return pb.Errorf(pb.ErrUnsupportedMediaType, "Content-Type", "Content-Type %.100q is not accepted; %s (charset=utf-8 may be added)", values[0], want)
}

// bearer authenticates r by its Authorization: Bearer key.
func (s *Server) bearer(r *http.Request) (pb.Principal, error) {
	auth := r.Header.Get("Authorization")
	// The scheme is case-insensitive (RFC 9110 §11.1).
	scheme, key, ok := strings.Cut(auth, " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	if auth == "" {
		return pb.Principal{}, pb.Errorf(pb.ErrUnauthenticated, "", "missing API key; send Authorization: Bearer <key>")
	}
	if !ok {
		return pb.Principal{}, pb.Errorf(pb.ErrUnauthenticated, "", "the Authorization header must be Bearer <key>")
	}
	return s.svc.Authenticate(r.Context(), strings.TrimSpace(key))
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) healthz(q *rest.Request) (int, any, error) {
	if err := s.svc.Ready(); err != nil {
		return 0, nil, &pb.Error{Code: pb.ErrUnavailable, Message: "not ready: the ledger writer has stopped"}
	}
	return 200, map[string]string{"status": "ok"}, nil
}

func (s *Server) createUser(q *rest.Request) (int, any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.svc.CreateUser(q.Ctx, q.Caller, q.Idem, in.Name) })
}

func (s *Server) createMerchant(q *rest.Request) (int, any, error) {
	var in struct {
		Name     string `json:"name"`
		Category string `json:"category"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.svc.CreateMerchant(q.Ctx, q.Caller, q.Idem, in.Name, in.Category) })
}

func (s *Server) createAgent(q *rest.Request) (int, any, error) {
	var in struct {
		Name      string          `json:"name"`
		PublicKey json.RawMessage `json:"public_key"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if err := rest.CheckJWK(in.PublicKey); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.svc.CreateAgent(q.Ctx, q.Caller, q.Idem, in.Name, in.PublicKey) })
}

func requireAmount(a *int64) (int64, error) {
	if a == nil {
		return 0, pb.Errorf(pb.ErrParameterMissing, "amount", "amount is required: an integer number of the currency's minor units")
	}
	return *a, nil
}

// requireMoney requires both an amount and a currency, the amount first.
func requireMoney(a *int64, currency string) (int64, error) {
	amount, err := requireAmount(a)
	if err == nil {
		err = rest.RequireCurrency(currency)
	}
	return amount, err
}

func (s *Server) topup(q *rest.Request) (int, any, error) {
	var in struct {
		Amount   *int64 `json:"amount"`
		Currency string `json:"currency"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	amount, err := requireMoney(in.Amount, in.Currency)
	if err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.svc.Topup(q.Ctx, q.Caller, q.Idem, amount, in.Currency) })
}

func (s *Server) balance(q *rest.Request) (int, any, error) {
	b, err := s.svc.Balances(q.Ctx, q.Caller)
	return 200, map[string]any{"object": "balance", "balances": b}, err
}

func (s *Server) createPayment(q *rest.Request) (int, any, error) {
	var in struct {
		Amount                 *int64            `json:"amount"`
		Currency               string            `json:"currency"`
		MerchantID             string            `json:"merchant_id"`
		Description            string            `json:"description"`
		MandateID              string            `json:"mandate_id"`
		CaptureMethod          pb.CaptureMethod  `json:"capture_method"`
		AuthorizationExpiresAt *string           `json:"authorization_expires_at"`
		Metadata               map[string]string `json:"metadata"`
		Provenance             struct {
			Payee  string `json:"payee"`
			Amount string `json:"amount"`
		} `json:"provenance"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	if err := pb.CheckCallerMetadata(in.Metadata); err != nil {
		return 0, nil, err
	}
	amount, err := requireAmount(in.Amount)
	if err == nil {
		err = rest.RequireCurrency(in.Currency)
	}
	if err != nil {
		return 0, nil, err
	}
	p := service.CreatePaymentParams{Amount: amount, Currency: in.Currency, MerchantID: in.MerchantID,
		Description: in.Description, MandateID: in.MandateID, CaptureMethod: in.CaptureMethod, Metadata: in.Metadata,
		PayeeProvenance: in.Provenance.Payee, AmountProvenance: in.Provenance.Amount}
	if p.AuthorizationExpiresAt, err = rest.ParseTime(in.AuthorizationExpiresAt, "authorization_expires_at"); err != nil {
		return 0, nil, err
	}
	return q.Run(201, func() service.Result { return s.svc.CreatePayment(q.Ctx, q.Caller, q.Idem, p) })
}

func (s *Server) listPayments(q *rest.Request) (int, any, error) {
	limit, after, err := q.ListParams(pb.PrefixPayment)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.svc.ListPayments(q.Ctx, q.Caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

// MaxWait bounds GET /v1/payments/{id}?wait=.
const MaxWait = 30 * time.Second

// waitPoll is how often a waiting request looks at the payment again.
const waitPoll = 100 * time.Millisecond

func (s *Server) getPayment(q *rest.Request) (int, any, error) {
	var wait time.Duration
	if v := q.Query("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWait {
			return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "wait", "wait must be a duration from 0s to %s, such as 30s", MaxWait)
		}
		wait = d
	}
	p, err := s.svc.Payment(q.Ctx, q.Caller, q.PathValue("id"))
	if err != nil || wait == 0 || p.Status != pb.StatusRequiresConfirmation {
		return 200, p, err
	}
	// An agent waits for the user's answer: answer as soon as the payment
	// leaves requires_confirmation, or with it as it is when wait runs out.
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		select {
		case <-q.Ctx.Done():
			return 0, nil, q.Ctx.Err()
		case <-deadline.C:
			return 200, p, nil
		case <-tick.C:
			if p, err = s.svc.Payment(q.Ctx, q.Caller, p.ID); err != nil || p.Status != pb.StatusRequiresConfirmation {
				return 200, p, err
			}
		}
	}
}

func (s *Server) capture(q *rest.Request) (int, any, error) {
	var in struct {
		Amount *int64 `json:"amount"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.PathValue("id")
	return q.Run(200, func() service.Result { return s.svc.Capture(q.Ctx, q.Caller, q.Idem, id, in.Amount) })
}

func (s *Server) cancel(q *rest.Request) (int, any, error) {
	return q.Act(s.svc.Cancel)
}

func (s *Server) refund(q *rest.Request) (int, any, error) {
	var in struct {
		Amount *int64 `json:"amount"`
		Reason string `json:"reason"`
	}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.PathValue("id")
	return q.Run(201, func() service.Result { return s.svc.Refund(q.Ctx, q.Caller, q.Idem, id, in.Amount, in.Reason) })
}

func (s *Server) verify(q *rest.Request) (int, any, error) {
	r, err := s.svc.VerifyLedger(q.Ctx, q.Caller)
	return 200, r, err
}
