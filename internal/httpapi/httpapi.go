// Package httpapi serves Paybound's public REST API (DESIGN.md §4) over
// net/http: authentication, request decoding with limits, idempotency keys,
// and the one table that maps error codes to HTTP statuses.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpsig"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/strictjson"
)

// MaxBodyBytes bounds every request body (1 MiB).
const MaxBodyBytes = 1 << 20

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3.1 document.
func OpenAPI() []byte { return openAPI }

// Server is the REST API.
type Server struct {
	svc     *service.Service
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // mux, observed (observe.go)
	routes  []Route
	metrics metrics
}

// Route is one registered endpoint: the table that the OpenAPI test checks
// against the document.
type Route struct {
	Method, Pattern string
	// Idempotent routes create or move money and require an Idempotency-Key.
	Idempotent bool
	// Public routes need no API key.
	Public bool
	// Secret routes answer with a secret (a new API key): their stored
	// idempotent responses are sealed.
	Secret  bool
	handler func(*request) (status int, v any, err error)
}

// New builds the API over svc.
func New(svc *service.Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, log: log, mux: http.NewServeMux()}
	s.handler = s.observe(s.mux)
	s.routes = []Route{
		{Method: "GET", Pattern: "/healthz", Public: true, handler: s.healthz},
		{Method: "GET", Pattern: "/v1/openapi.json", Public: true, handler: nil},
		{Method: "POST", Pattern: "/v1/users", Idempotent: true, Secret: true, handler: s.createUser},
		{Method: "POST", Pattern: "/v1/merchants", Idempotent: true, Secret: true, handler: s.createMerchant},
		{Method: "POST", Pattern: "/v1/agents", Idempotent: true, Secret: true, handler: s.createAgent},
		{Method: "POST", Pattern: "/v1/agents/{id}/keys", Idempotent: true, handler: s.addAgentKey},
		{Method: "GET", Pattern: "/v1/agents/{id}/keys", handler: s.agentKeys},
		{Method: "POST", Pattern: "/v1/agents/{id}/keys/{keyid}/revoke", Idempotent: true, handler: s.revokeAgentKey},
		{Method: "POST", Pattern: "/v1/topups", Idempotent: true, handler: s.topup},
		{Method: "POST", Pattern: "/v1/users/{id}/fundings", Idempotent: true, handler: s.fund},
		{Method: "GET", Pattern: "/v1/balance", handler: s.balance},
		{Method: "POST", Pattern: "/v1/payments", Idempotent: true, handler: s.createPayment},
		{Method: "GET", Pattern: "/v1/payments", handler: s.listPayments},
		{Method: "GET", Pattern: "/v1/payments/{id}", handler: s.getPayment},
		{Method: "POST", Pattern: "/v1/payments/{id}/capture", Idempotent: true, handler: s.capture},
		{Method: "POST", Pattern: "/v1/payments/{id}/cancel", Idempotent: true, handler: s.cancel},
		{Method: "POST", Pattern: "/v1/payments/{id}/refunds", Idempotent: true, handler: s.refund},
		{Method: "GET", Pattern: "/v1/ledger/verify", handler: s.verify},
		{Method: "POST", Pattern: "/v1/totp", Idempotent: true, Secret: true, handler: s.enrollTOTP},
		{Method: "POST", Pattern: "/v1/passkeys/registration", handler: s.passkeyRegistration},
		{Method: "POST", Pattern: "/v1/passkeys", Idempotent: true, handler: s.registerPasskey},
		{Method: "GET", Pattern: "/v1/passkeys", handler: s.passkeys},
		{Method: "POST", Pattern: "/v1/passkeys/{id}/revoke", Idempotent: true, handler: s.revokePasskey},
		{Method: "POST", Pattern: "/v1/passkeys/assertion", handler: s.passkeyAssertion},
		{Method: "POST", Pattern: "/v1/totp/verify", Idempotent: true, handler: s.verifyTOTP},
		{Method: "GET", Pattern: "/v1/confirmations", handler: s.listConfirmations},
		{Method: "POST", Pattern: "/v1/confirmations/{id}/approve", Idempotent: true, handler: s.approve},
		{Method: "POST", Pattern: "/v1/confirmations/{id}/deny", Idempotent: true, handler: s.deny},
		{Method: "POST", Pattern: "/v1/mandates", Idempotent: true, handler: s.createMandate},
		{Method: "GET", Pattern: "/v1/mandates", handler: s.listMandates},
		{Method: "GET", Pattern: "/v1/mandates/{id}", handler: s.getMandate},
		{Method: "POST", Pattern: "/v1/mandates/{id}/revoke", Idempotent: true, handler: s.revokeMandate},
		{Method: "GET", Pattern: "/v1/payments/{id}/trace", handler: s.trace},
		{Method: "GET", Pattern: "/v1/payments/{id}/receipt", handler: s.receipt},
		{Method: "POST", Pattern: "/v1/payments/{id}/disputes", Idempotent: true, handler: s.openDispute},
		{Method: "GET", Pattern: "/v1/disputes", handler: s.listDisputes},
		{Method: "GET", Pattern: "/v1/disputes/{id}", handler: s.getDispute},
		{Method: "POST", Pattern: "/v1/disputes/{id}/resolve", Idempotent: true, handler: s.resolveDispute},
		{Method: "POST", Pattern: "/v1/risk/rules", handler: s.putRiskRule},
		{Method: "GET", Pattern: "/v1/risk/rules", handler: s.listRiskRules},
		{Method: "DELETE", Pattern: "/v1/risk/rules/{name}", handler: s.deleteRiskRule},
		{Method: "GET", Pattern: "/v1/risk/attempts", handler: s.riskAttempts},
		{Method: "POST", Pattern: "/v1/merchants/{id}/risk_flags", handler: s.setMerchantFlags},
		{Method: "GET", Pattern: "/v1/log/key", Public: true, handler: s.logKey},
		{Method: "GET", Pattern: "/v1/log/checkpoint", Public: true, handler: s.logCheckpoint},
		{Method: "GET", Pattern: "/v1/log/entries/{index}", handler: s.logEntry},
		{Method: "GET", Pattern: "/v1/log/proof/inclusion", Public: true, handler: s.inclusionProof},
		{Method: "GET", Pattern: "/v1/log/proof/consistency", Public: true, handler: s.consistencyProof},
		{Method: "GET", Pattern: "/v1/log/tile/{path...}", Public: true, handler: s.tile},
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
			writeError(w, s.log, pb.Errorf(pb.ErrMethod, "", "%s is not allowed on %s; use %s", r.Method, pattern, allowed))
		})
	}
	s.mux.HandleFunc("GET /metrics", s.metricsRoute)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, s.log, pb.Errorf(pb.ErrRouteNotFound, "", "no route %s %s; see /v1/openapi.json", r.Method, r.URL.Path))
	})
	return s
}

// Routes lists every registered endpoint.
func (s *Server) Routes() []Route { return s.routes }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// statusOf is the one table from error codes to HTTP statuses: by type,
// with a few codes that need their own status.
func statusOf(err error) int {
	code := pb.ErrorCode(err)
	switch code {
	case pb.ErrIdempotencyConflict:
		return http.StatusUnprocessableEntity
	case pb.ErrMethod:
		return http.StatusMethodNotAllowed
	case pb.ErrUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case pb.ErrHeadersTooLarge:
		return http.StatusRequestHeaderFieldsTooLarge
	case pb.ErrUnavailable, pb.ErrLedgerStopped:
		return http.StatusServiceUnavailable
	}
	switch code.Type() {
	case pb.TypeInvalidRequest:
		return http.StatusBadRequest
	case pb.TypeAuthentication:
		return http.StatusUnauthorized
	case pb.TypePermission:
		return http.StatusForbidden
	case pb.TypeNotFound:
		return http.StatusNotFound
	case pb.TypeConflict:
		return http.StatusConflict
	case pb.TypeDeclined:
		return http.StatusPaymentRequired
	case pb.TypeRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// errorJSON renders err as the public error envelope. Errors that are not
// *pb.Error are internal: logged in full, shown as a generic message.
func errorJSON(log *slog.Logger, err error) (int, []byte) {
	var e *pb.Error
	if !errors.As(err, &e) {
		log.Error("internal error", "err", err)
		e = &pb.Error{Code: pb.ErrInternal, Message: "an internal error occurred; it has been logged"}
	}
	body, _ := json.Marshal(struct {
		Error *pb.Error `json:"error"`
	}{e})
	return statusOf(e), body
}

func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	status, body := errorJSON(log, err)
	var e *pb.Error
	switch {
	case errors.As(err, &e) && e.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	case pb.ErrorCode(err) == pb.ErrIdempotencyRunning || status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(body)
	w.Write([]byte{'\n'})
}

// request is one call in flight, as the handlers see it.
type request struct {
	r      *http.Request
	ctx    context.Context
	caller pb.Principal
	body   []byte
	idem   *service.Idempotency
	log    *slog.Logger
}

// decode reads the JSON body into v and, for an idempotent route, fixes the
// request hash over the decoded value (so that whitespace and field order do
// not matter). An empty body is {}. The body is decoded strictly (see
// strictjson): a document that another parser could read differently (a key
// twice at any depth, a key that matches a field only case-insensitively,
// invalid UTF-8) is refused, so that a proxy or an agent-side check that
// reads the body sees the request Paybound runs; unknown fields are refused
// too.
func (q *request) decode(v any) error {
	if len(bytes.Trim(q.body, jsonSpace)) > 0 {
		if err := strictjson.Unmarshal(q.body, v); err != nil {
			return decodeError(err)
		}
	}
	if q.idem != nil {
		canon, _ := json.Marshal(v)
		h := sha256.New()
		fmt.Fprintf(h, "%s %s\n", q.r.Method, q.r.URL.Path)
		h.Write(canon)
		copy(q.idem.Hash[:], h.Sum(nil))
	}
	return nil
}

// jsonSpace is the white space JSON allows (RFC 8259 §2).
const jsonSpace = " \t\r\n"

func decodeError(err error) error {
	var strict *strictjson.Error
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &strict):
		switch strict.Kind {
		case strictjson.UnknownField, strictjson.CaseMismatch:
			return pb.Errorf(pb.ErrUnknownField, strict.Path, "%v", strict)
		case strictjson.DuplicateKey, strictjson.InvalidUTF8:
			return pb.Errorf(pb.ErrInvalidJSON, strict.Path, "%v", strict)
		case strictjson.TooDeep:
			return pb.Errorf(pb.ErrInvalidJSON, "", "the body is refused: %v", strict)
		}
		return pb.Errorf(pb.ErrInvalidJSON, "", "the body is not valid JSON: %v", strict)
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return pb.Errorf(pb.ErrInvalidJSON, "", "the body is not valid JSON: %v", err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return pb.Errorf(pb.ErrInvalidJSON, "", "the body must be a JSON object")
		}
		if typ.Field == "amount" {
			return pb.Errorf(pb.ErrInvalidAmount, "amount", "amount must be an integer number of the currency's minor units between 1 and %d: 12.50 USD is 1250, 500 JPY is 500", pb.MaxAmount)
		}
		return pb.Errorf(pb.ErrParameterInvalid, typ.Field, "%s must be a JSON %s", typ.Field, typ.Type.Kind())
	case strings.HasPrefix(err.Error(), "json: unknown field "): // strictjson refuses these first
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return pb.Errorf(pb.ErrUnknownField, field, "unknown field %q", field)
	}
	return pb.Errorf(pb.ErrInvalidJSON, "", "the body could not be read: %v", err)
}

func (s *Server) wrap(rt Route) http.Handler {
	if rt.handler == nil { // the OpenAPI document
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeRaw(w, 200, openAPIFor(r)) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := &request{r: r, ctx: r.Context(), log: s.log}
		if err := singleHeaders(r); err != nil {
			writeError(w, s.log, err)
			return
		}
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					writeError(w, s.log, pb.Errorf(pb.ErrBodyTooLarge, "", "the body is larger than %d bytes", MaxBodyBytes))
				} else {
					writeError(w, s.log, pb.Errorf(pb.ErrInvalidJSON, "", "couldn't read the body: %v", err))
				}
				return
			}
			if err := checkContentType(r.Header.Values("Content-Type"), body); err != nil {
				writeError(w, s.log, err)
				return
			}
			q.body = body
		}
		if !rt.Public && r.Header.Get("Signature-Input") != "" && r.Header.Get("Authorization") == "" {
			// A signed agent request: the signature is the credential.
			scheme := "http"
			if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
				scheme = "https"
			}
			p, err := s.svc.AuthenticateSigned(q.ctx, httpsig.RequestMessage(r, scheme, q.body))
			if err != nil {
				s.securityEvent(r, "signature_refused", err)
				writeError(w, s.log, err)
				return
			}
			q.caller = p
		} else if !rt.Public {
			p, err := s.bearer(r)
			if err != nil {
				s.securityEvent(r, "authentication_failed", err)
				writeError(w, s.log, err)
				return
			}
			q.caller = p
		}
		noteCaller(r.Context(), q.caller)
		if rt.Idempotent {
			key := r.Header.Get("Idempotency-Key")
			if key == "" {
				writeError(w, s.log, pb.Errorf(pb.ErrIdempotencyRequired, "Idempotency-Key", "this request moves money or creates a resource: send an Idempotency-Key header (a unique string such as a UUID) so that it can be retried safely"))
				return
			}
			if len(key) > service.MaxIdempotencyKeyLength || !printable(key) {
				writeError(w, s.log, pb.Errorf(pb.ErrIdempotencyKey, "Idempotency-Key", "Idempotency-Key must be 1-%d printable ASCII characters", service.MaxIdempotencyKeyLength))
				return
			}
			q.idem = &service.Idempotency{Caller: q.caller.ID, Key: key}
			if rt.Secret {
				q.idem.Seal = s.svc.Seal
			}
		}
		status, v, err := rt.handler(q)
		if q.idem != nil && q.idem.Body != nil {
			// Outcome of the ledger writer: fresh or replayed, the bytes are the
			// ones stored with the effect.
			body := q.idem.Body
			if err == errReplayed {
				if rt.Secret {
					var oerr error
					if body, oerr = s.svc.Open(body); oerr != nil {
						writeError(w, s.log, pb.Errorf(pb.ErrIdempotencyConflict, "", "the stored response for this Idempotency-Key was sealed under another operator key; use a new key"))
						return
					}
				}
				w.Header().Set("Idempotent-Replayed", "true")
			}
			writeRaw(w, q.idem.Status, body)
			return
		}
		if err != nil && err != errReplayed {
			writeError(w, s.log, err)
			return
		}
		if rb, ok := v.(raw); ok {
			w.Header().Set("Content-Type", rb.ContentType)
			w.Header().Set("Content-Length", strconv.Itoa(len(rb.Body)))
			w.WriteHeader(status)
			w.Write(rb.Body)
			return
		}
		body, merr := json.Marshal(v)
		if merr != nil {
			writeError(w, s.log, fmt.Errorf("couldn't encode response: %w", merr))
			return
		}
		writeRaw(w, status, body)
	})
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

// errReplayed marks a response served from the idempotency store.
var errReplayed = errors.New("replayed")

// act runs an action on the resource {id} whose body must be empty (or
// {}), answering 200 with what it returns: cancel, revoke, deny.
func (q *request) act(action func(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result) (int, any, error) {
	var in struct{}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.r.PathValue("id")
	return q.run(200, func() service.Result { return action(q.ctx, q.caller, q.idem, id) })
}

// idempotent prepares q.idem's renderer for a call whose success answers
// with status, and turns the service's Result into the handler's return.
func (q *request) run(status int, call func() service.Result) (int, any, error) {
	if q.idem != nil {
		q.idem.Render = func(v any, err error) (int, []byte) {
			if err != nil {
				return errorJSON(q.log, err)
			}
			b, merr := json.Marshal(v)
			if merr != nil {
				return errorJSON(q.log, fmt.Errorf("couldn't encode response: %w", merr))
			}
			return status, b
		}
	}
	res := call()
	if res.Replayed {
		return 0, nil, errReplayed
	}
	return status, res.Value, res.Err
}

func (s *Server) healthz(q *request) (int, any, error) {
	if err := s.svc.Ready(); err != nil {
		return 0, nil, &pb.Error{Code: pb.ErrUnavailable, Message: "not ready: the ledger writer has stopped"}
	}
	return 200, map[string]string{"status": "ok"}, nil
}

func (s *Server) createUser(q *request) (int, any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	return q.run(201, func() service.Result { return s.svc.CreateUser(q.ctx, q.caller, q.idem, in.Name) })
}

func (s *Server) createMerchant(q *request) (int, any, error) {
	var in struct {
		Name     string `json:"name"`
		Category string `json:"category"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	return q.run(201, func() service.Result { return s.svc.CreateMerchant(q.ctx, q.caller, q.idem, in.Name, in.Category) })
}

func (s *Server) createAgent(q *request) (int, any, error) {
	var in struct {
		Name      string          `json:"name"`
		PublicKey json.RawMessage `json:"public_key"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if err := checkJWK(in.PublicKey); err != nil {
		return 0, nil, err
	}
	return q.run(201, func() service.Result { return s.svc.CreateAgent(q.ctx, q.caller, q.idem, in.Name, in.PublicKey) })
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
		err = requireCurrency(currency)
	}
	return amount, err
}

func requireCurrency(c string) error {
	if c == "" {
		return pb.Errorf(pb.ErrParameterMissing, "currency", "currency is required: an ISO 4217 code such as USD")
	}
	return nil
}

func (s *Server) topup(q *request) (int, any, error) {
	var in struct {
		Amount   *int64 `json:"amount"`
		Currency string `json:"currency"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	amount, err := requireMoney(in.Amount, in.Currency)
	if err != nil {
		return 0, nil, err
	}
	return q.run(201, func() service.Result { return s.svc.Topup(q.ctx, q.caller, q.idem, amount, in.Currency) })
}

func (s *Server) balance(q *request) (int, any, error) {
	b, err := s.svc.Balances(q.ctx, q.caller)
	return 200, map[string]any{"object": "balance", "balances": b}, err
}

func (s *Server) createPayment(q *request) (int, any, error) {
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
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	amount, err := requireAmount(in.Amount)
	if err == nil {
		err = requireCurrency(in.Currency)
	}
	if err != nil {
		return 0, nil, err
	}
	p := service.CreatePaymentParams{Amount: amount, Currency: in.Currency, MerchantID: in.MerchantID,
		Description: in.Description, MandateID: in.MandateID, CaptureMethod: in.CaptureMethod, Metadata: in.Metadata,
		PayeeProvenance: in.Provenance.Payee, AmountProvenance: in.Provenance.Amount}
	if p.AuthorizationExpiresAt, err = parseTime(in.AuthorizationExpiresAt, "authorization_expires_at"); err != nil {
		return 0, nil, err
	}
	return q.run(201, func() service.Result { return s.svc.CreatePayment(q.ctx, q.caller, q.idem, p) })
}

func (s *Server) listPayments(q *request) (int, any, error) {
	limit, after, err := listParams(q, pb.PrefixPayment)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.svc.ListPayments(q.ctx, q.caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

// MaxWait bounds GET /v1/payments/{id}?wait=.
const MaxWait = 30 * time.Second

// waitPoll is how often a waiting request looks at the payment again.
const waitPoll = 100 * time.Millisecond

func (s *Server) getPayment(q *request) (int, any, error) {
	var wait time.Duration
	if v := q.r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWait {
			return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "wait", "wait must be a duration from 0s to %s, such as 30s", MaxWait)
		}
		wait = d
	}
	p, err := s.svc.Payment(q.ctx, q.caller, q.r.PathValue("id"))
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
		case <-q.ctx.Done():
			return 0, nil, q.ctx.Err()
		case <-deadline.C:
			return 200, p, nil
		case <-tick.C:
			if p, err = s.svc.Payment(q.ctx, q.caller, p.ID); err != nil || p.Status != pb.StatusRequiresConfirmation {
				return 200, p, err
			}
		}
	}
}

func (s *Server) capture(q *request) (int, any, error) {
	var in struct {
		Amount *int64 `json:"amount"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.r.PathValue("id")
	return q.run(200, func() service.Result { return s.svc.Capture(q.ctx, q.caller, q.idem, id, in.Amount) })
}

func (s *Server) cancel(q *request) (int, any, error) {
	return q.act(s.svc.Cancel)
}

func (s *Server) refund(q *request) (int, any, error) {
	var in struct {
		Amount *int64 `json:"amount"`
		Reason string `json:"reason"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.r.PathValue("id")
	return q.run(201, func() service.Result { return s.svc.Refund(q.ctx, q.caller, q.idem, id, in.Amount, in.Reason) })
}

// listParams reads ?limit= and ?starting_after= (an ID with prefix).
func listParams(q *request, prefix string) (limit int, after string, err error) {
	limit = 10
	if v := q.r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > pb.MaxListLimit {
			return 0, "", pb.Errorf(pb.ErrParameterInvalid, "limit", "limit must be an integer from 1 to %d", pb.MaxListLimit)
		}
		limit = n
	}
	after = q.r.URL.Query().Get("starting_after")
	if after != "" && !pb.HasPrefix(after, prefix) {
		return 0, "", pb.Errorf(pb.ErrParameterInvalid, "starting_after", "starting_after must be an ID of this list (%s…)", prefix)
	}
	return limit, after, nil
}

// parseTime reads an optional RFC 3339 field.
func parseTime(v *string, param string) (time.Time, error) {
	if v == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return time.Time{}, pb.Errorf(pb.ErrParameterInvalid, param, "%s must be an RFC 3339 timestamp such as 2026-12-01T09:00:00Z", param)
	}
	return t, nil
}

func (s *Server) createMandate(q *request) (int, any, error) {
	var in struct {
		AgentID     string `json:"agent_id"`
		Description string `json:"description"`
		Currency    string `json:"currency"`
		MaxAmount   *int64 `json:"max_amount"`
		Budget      *struct {
			Amount *int64          `json:"amount"`
			Period pb.BudgetPeriod `json:"period"`
		} `json:"budget"`
		MerchantIDs      []string     `json:"merchant_ids"`
		Categories       []string     `json:"merchant_categories"`
		ValidFrom        *string      `json:"valid_from"`
		ExpiresAt        *string      `json:"expires_at"`
		Schedule         *pb.Schedule `json:"schedule"`
		MaxPayments      int64        `json:"max_payments"`
		ConfirmAbove     int64        `json:"confirm_above"`
		Condition        string       `json:"condition"`
		RequireSignature *bool        `json:"require_signature"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.AgentID == "":
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "agent_id", "agent_id is required: the agent the mandate is for")
	case in.MaxAmount == nil:
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "max_amount", "max_amount is required: the most one payment may be, in minor units")
	case in.Budget == nil || in.Budget.Amount == nil:
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "budget.amount", "budget.amount is required: what the agent may spend per budget.period")
	}
	if err := requireCurrency(in.Currency); err != nil {
		return 0, nil, err
	}
	m := pb.Mandate{AgentID: in.AgentID, Description: in.Description, Currency: in.Currency, MaxAmount: *in.MaxAmount,
		Budget: pb.Budget{Amount: *in.Budget.Amount, Period: in.Budget.Period}, MerchantIDs: in.MerchantIDs,
		Categories: in.Categories, Schedule: in.Schedule, MaxPayments: in.MaxPayments, ConfirmAbove: in.ConfirmAbove,
		Condition: in.Condition}
	var err error
	if m.ValidFrom, err = parseTime(in.ValidFrom, "valid_from"); err != nil {
		return 0, nil, err
	}
	exp, err := parseTime(in.ExpiresAt, "expires_at")
	if err != nil {
		return 0, nil, err
	}
	if !exp.IsZero() {
		m.ExpiresAt = &exp
	}
	return q.run(201, func() service.Result { return s.svc.CreateMandate(q.ctx, q.caller, q.idem, m, in.RequireSignature) })
}

func (s *Server) listMandates(q *request) (int, any, error) {
	limit, after, err := listParams(q, pb.PrefixMandate)
	if err != nil {
		return 0, nil, err
	}
	data, more, err := s.svc.ListMandates(q.ctx, q.caller, after, limit)
	return 200, map[string]any{"object": "list", "data": data, "has_more": more}, err
}

func (s *Server) getMandate(q *request) (int, any, error) {
	m, err := s.svc.Mandate(q.ctx, q.caller, q.r.PathValue("id"))
	return 200, m, err
}

func (s *Server) revokeMandate(q *request) (int, any, error) {
	return q.act(s.svc.RevokeMandate)
}

func (s *Server) enrollTOTP(q *request) (int, any, error) {
	var in struct{}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	return q.run(201, func() service.Result { return s.svc.EnrollTOTP(q.ctx, q.caller, q.idem) })
}

func (s *Server) verifyTOTP(q *request) (int, any, error) {
	var in struct {
		Code string `json:"code"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Code == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "code", "code is required: the 6 digits the authenticator app shows")
	}
	return q.run(200, func() service.Result { return s.svc.VerifyTOTP(q.ctx, q.caller, q.idem, in.Code) })
}

func (s *Server) approve(q *request) (int, any, error) {
	var in struct {
		TOTP    string          `json:"totp"`
		Passkey json.RawMessage `json:"passkey"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.r.PathValue("id")
	switch {
	case in.TOTP != "" && len(in.Passkey) > 0:
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "passkey", "give one factor: totp or passkey, not both")
	case len(in.Passkey) > 0:
		return q.run(200, func() service.Result { return s.svc.ApproveWithPasskey(q.ctx, q.caller, q.idem, id, in.Passkey) })
	case in.TOTP == "":
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "passkey", "a factor is required: passkey (an assertion from POST /v1/passkeys/assertion) or totp (the 6 digits your authenticator app shows)")
	}
	return q.run(200, func() service.Result { return s.svc.ApproveWithTOTP(q.ctx, q.caller, q.idem, id, in.TOTP) })
}

// passkeyRegistration begins a passkey registration: the options for
// navigator.credentials.create().
func (s *Server) passkeyRegistration(q *request) (int, any, error) {
	var in struct{}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	opts, err := s.svc.BeginPasskeyRegistration(q.ctx, q.caller)
	return 200, opts, err
}

func (s *Server) registerPasskey(q *request) (int, any, error) {
	var in struct {
		Credential json.RawMessage `json:"credential"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if len(in.Credential) == 0 {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "credential", "credential is required: the PublicKeyCredential navigator.credentials.create() returned, as JSON")
	}
	return q.run(201, func() service.Result { return s.svc.RegisterPasskey(q.ctx, q.caller, q.idem, in.Credential) })
}

func (s *Server) passkeys(q *request) (int, any, error) {
	keys, err := s.svc.Passkeys(q.ctx, q.caller)
	return 200, map[string]any{"object": "list", "data": keys, "has_more": false}, err
}

func (s *Server) revokePasskey(q *request) (int, any, error) {
	return q.act(s.svc.RevokePasskey)
}

// passkeyAssertion returns the options for navigator.credentials.get()
// that approve one confirmation's payment.
func (s *Server) passkeyAssertion(q *request) (int, any, error) {
	var in struct {
		ConfirmationID string `json:"confirmation_id"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.ConfirmationID == "" {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "confirmation_id", "confirmation_id is required: the cfm_… of the payment to approve")
	}
	opts, err := s.svc.PasskeyApprovalOptions(q.ctx, q.caller, in.ConfirmationID)
	return 200, opts, err
}

func (s *Server) deny(q *request) (int, any, error) {
	return q.act(s.svc.Deny)
}

func (s *Server) addAgentKey(q *request) (int, any, error) {
	var in struct {
		PublicKey          json.RawMessage `json:"public_key"`
		RotateAfterSeconds int64           `json:"rotate_after_seconds"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if len(in.PublicKey) == 0 {
		return 0, nil, pb.Errorf(pb.ErrParameterMissing, "public_key", "public_key is required: an Ed25519 JWK")
	}
	if err := checkJWK(in.PublicKey); err != nil {
		return 0, nil, err
	}
	if in.RotateAfterSeconds < 0 || in.RotateAfterSeconds > 30*24*3600 {
		return 0, nil, pb.Errorf(pb.ErrParameterInvalid, "rotate_after_seconds", "rotate_after_seconds must be between 0 and 2592000 (30 days)")
	}
	id := q.r.PathValue("id")
	rotate := time.Duration(in.RotateAfterSeconds) * time.Second
	return q.run(201, func() service.Result { return s.svc.AddAgentKey(q.ctx, q.caller, q.idem, id, in.PublicKey, rotate) })
}

// checkJWK refuses a public_key in which a member that Paybound reads is
// named with other letter cases ("X" for "x"): JWK member names are
// case-sensitive (RFC 7517 §4), so another parser ignores "X" where
// encoding/json would read it as the key. Other members (kid, use) are
// allowed, as JWKs carry them. Duplicates and invalid UTF-8 were refused
// with the body.
func checkJWK(raw json.RawMessage) error {
	var k struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		D   string `json:"d"`
	}
	if len(raw) == 0 {
		return nil
	}
	var e *strictjson.Error
	if err := (strictjson.Options{AllowUnknownFields: true}).Unmarshal(raw, &k); errors.As(err, &e) {
		return pb.Errorf(pb.ErrParameterInvalid, "public_key", "public_key: %v", e)
	}
	return nil // type errors are ParseEd25519JWK's to explain
}

func (s *Server) agentKeys(q *request) (int, any, error) {
	keys, err := s.svc.AgentKeys(q.ctx, q.caller, q.r.PathValue("id"))
	return 200, map[string]any{"object": "list", "data": keys, "has_more": false}, err
}

func (s *Server) revokeAgentKey(q *request) (int, any, error) {
	keyid := q.r.PathValue("keyid")
	return q.act(func(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
		return s.svc.RevokeAgentKey(ctx, caller, idem, id, keyid)
	})
}

func (s *Server) verify(q *request) (int, any, error) {
	r, err := s.svc.VerifyLedger(q.ctx, q.caller)
	return 200, r, err
}
