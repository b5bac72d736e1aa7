// Package acp serves the Agentic Commerce Protocol (release 2026-04-17) over
// HTTP: each merchant's checkout API under /acp/{merchant_id}/ (create,
// update, get, complete and cancel checkout sessions, as
// openapi.agentic_checkout.yaml says) and Paybound's delegate_payment as the
// PSP (/agentic_commerce/delegate_payment). It is the protocol's wire only:
// headers (API-Version, Idempotency-Key, Request-Id, Idempotent-Replayed),
// ACP's error shape and idempotency rules, lower-case currencies. The
// checkout itself is internal/checkout's, which it calls with the
// authenticated caller; the caller is authenticated by the function Main
// gives it (a bearer key or an RFC 9421 signed request).
package acp

import (
	"bytes"
	"crypto/sha256"
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
	"unicode"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/strictjson"
)

// MaxBodyBytes bounds a request body (1 MiB).
const MaxBodyBytes = 1 << 20

// Authenticator authenticates a request from its headers and body: the
// caller, or a coded authentication error.
type Authenticator func(r *http.Request, body []byte) (pb.Principal, error)

// Handler serves ACP. Safe for concurrent use.
type Handler struct {
	co   *checkout.Service
	auth Authenticator
	log  *slog.Logger
	mux  *http.ServeMux
}

// New returns the ACP handler over the checkout.
func New(co *checkout.Service, auth Authenticator, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{co: co, auth: auth, log: log, mux: http.NewServeMux()}
	const sessions = "/acp/{merchant_id}/checkout_sessions"
	for _, rt := range []struct {
		pattern string
		ep      endpoint
	}{
		{"POST " + sessions, endpoint{name: "create", status: 201, run: h.create}},
		{"POST " + sessions + "/{id}", endpoint{name: "update", status: 200, run: h.update}},
		{"GET " + sessions + "/{id}", endpoint{name: "get", status: 200, run: h.get}},
		{"POST " + sessions + "/{id}/complete", endpoint{name: "complete", status: 200, run: h.complete}},
		{"POST " + sessions + "/{id}/cancel", endpoint{name: "cancel", status: 200, run: h.cancel, optionalBody: true}},
		{"POST /agentic_commerce/delegate_payment", endpoint{name: "delegate_payment", status: 201, run: h.delegate, delegate: true}},
	} {
		h.mux.Handle(rt.pattern, h.wrap(rt.ep))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, endpoint{}, pb.Errorf(pb.ErrRouteNotFound, "", "no ACP route %s %s", r.Method, r.URL.Path))
	})
	return h
}

// Patterns are where Main mounts the handler.
func Patterns() []string { return []string{"/acp/", "/agentic_commerce/"} }

// ServeHTTP serves ACP, echoing the request's Request-Id on every answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get("Request-Id"); id != "" && len(id) <= 255 && printable(id) {
		w.Header().Set("Request-Id", id)
	}
	h.mux.ServeHTTP(w, r)
}

// endpoint is one ACP operation.
type endpoint struct {
	name         string
	status       int // of success
	optionalBody bool
	delegate     bool // delegate_payment: its own error codes
	run          func(c *call) (any, service.Result)
}

// call is one request in flight.
type call struct {
	r      *http.Request
	body   []byte
	caller pb.Principal
	idem   *service.Idempotency
	key    string
}

// wrap runs the checks every ACP request passes, in order: API-Version,
// the body (POST), the caller, the Idempotency-Key (POST); then the
// operation, and writes its answer. Each refusal is ACP's error shape.
func (h *Handler) wrap(ep endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{r: r}
		if err := h.admit(w, r, ep, c); err != nil {
			h.writeError(w, ep, err)
			return
		}
		v, res := ep.run(c)
		if c.idem != nil && c.idem.Body != nil { // the bytes stored with the effect
			if res.Replayed {
				w.Header().Set("Idempotent-Replayed", "true")
			}
			writeJSON(w, c.idem.Status, c.idem.Body)
			return
		}
		if res.Err != nil {
			h.writeError(w, ep, res.Err)
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			h.writeError(w, ep, fmt.Errorf("couldn't encode the response: %w", err))
			return
		}
		writeJSON(w, ep.status, b)
	})
}

func (h *Handler) admit(w http.ResponseWriter, r *http.Request, ep endpoint, c *call) error {
	v := r.Header.Get("API-Version")
	if v == "" {
		return pb.Errorf(pb.ErrUnsupportedVersion, "API-Version", "the API-Version header is required; this server speaks %s", strings.Join(checkout.ACPVersions, ", "))
	}
	if !slices.Contains(checkout.ACPVersions, v) {
		return pb.Errorf(pb.ErrUnsupportedVersion, "API-Version", "API-Version %.40q is not supported; this server speaks %s", v, strings.Join(checkout.ACPVersions, ", "))
	}
	for _, name := range []string{"Authorization", "Idempotency-Key", "API-Version"} {
		if n := len(r.Header.Values(name)); n > 1 {
			return pb.Errorf(pb.ErrParameterInvalid, name, "send one %s header, not %d", name, n)
		}
	}
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return pb.Errorf(pb.ErrBodyTooLarge, "", "the body is larger than %d bytes", MaxBodyBytes)
			}
			return pb.Errorf(pb.ErrInvalidJSON, "", "couldn't read the body: %v", err)
		}
		if len(body) > 0 || !ep.optionalBody {
			if err := jsonType(r.Header.Values("Content-Type")); err != nil {
				return err
			}
		}
		c.body = body
	}
	p, err := h.auth(r, c.body)
	if err != nil {
		return err
	}
	c.caller = p
	if r.Method != http.MethodPost {
		return nil
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return pb.Errorf(pb.ErrIdempotencyRequired, "Idempotency-Key", "Idempotency-Key header is required on every POST")
	}
	if len(key) > service.MaxIdempotencyKeyLength || !printable(key) {
		return pb.Errorf(pb.ErrIdempotencyKey, "Idempotency-Key", "Idempotency-Key must be 1-%d printable ASCII characters", service.MaxIdempotencyKeyLength)
	}
	w.Header().Set("Idempotency-Key", key)
	c.key = key
	// ACP scopes a key to the caller and the endpoint; the request hash
	// covers the path and the body's JSON value (not its spacing).
	c.idem = &service.Idempotency{Caller: p.ID, Key: "acp " + ep.name + " " + key}
	hsh := sha256.New()
	fmt.Fprintf(hsh, "%s %s\n", r.Method, r.URL.Path)
	var buf bytes.Buffer
	if json.Compact(&buf, c.body) != nil {
		buf.Reset()
		buf.Write(c.body)
	}
	hsh.Write(buf.Bytes())
	copy(c.idem.Hash[:], hsh.Sum(nil))
	c.idem.Render = func(v any, err error) (int, []byte) {
		if err != nil {
			return h.errorBody(ep, err)
		}
		b, merr := json.Marshal(h.wire(v))
		if merr != nil {
			return h.errorBody(ep, fmt.Errorf("couldn't encode the response: %w", merr))
		}
		return ep.status, b
	}
	return nil
}

// wire is an operation's value as ACP shows it.
func (h *Handler) wire(v any) any {
	switch x := v.(type) {
	case *pb.CheckoutSession:
		return h.co.Wire(x, nil)
	case *pb.VaultToken:
		return checkout.TokenWire(x)
	}
	return v
}

// decode reads the body strictly into v: unknown fields, duplicate keys
// and invalid UTF-8 are refused, as ACP's schemas close every object.
func (c *call) decode(v any) error {
	if len(strings.TrimSpace(string(c.body))) == 0 {
		return pb.Errorf(pb.ErrInvalidJSON, "", "the body must be a JSON object")
	}
	if err := strictjson.Unmarshal(c.body, v); err != nil {
		return rest.DecodeError(err)
	}
	return nil
}

func (h *Handler) create(c *call) (any, service.Result) {
	var in checkout.CreateRequest
	if err := c.decode(&in); err != nil {
		return nil, service.Result{Err: err}
	}
	p, err := in.Params()
	if err != nil {
		return nil, service.Result{Err: err}
	}
	res := h.co.CreateSession(c.r.Context(), c.caller, c.idem, c.r.PathValue("merchant_id"), p)
	return h.wire(res.Value), res
}

func (h *Handler) update(c *call) (any, service.Result) {
	var in checkout.UpdateRequest
	if err := c.decode(&in); err != nil {
		return nil, service.Result{Err: err}
	}
	p, err := in.Params()
	if err != nil {
		return nil, service.Result{Err: err}
	}
	res := h.co.UpdateSession(c.r.Context(), c.caller, c.idem, c.r.PathValue("merchant_id"), c.r.PathValue("id"), p)
	return h.wire(res.Value), res
}

func (h *Handler) get(c *call) (any, service.Result) {
	v, err := h.co.SessionJSON(c.r.Context(), c.caller, c.r.PathValue("merchant_id"), c.r.PathValue("id"))
	return v, service.Result{Value: v, Err: err}
}

func (h *Handler) complete(c *call) (any, service.Result) {
	var in checkout.CompleteRequest
	if err := c.decode(&in); err != nil {
		return nil, service.Result{Err: err}
	}
	p, err := in.Params()
	if err != nil {
		return nil, service.Result{Err: err}
	}
	res := h.co.CompleteSession(c.r.Context(), c.caller, c.idem, c.r.PathValue("merchant_id"), c.r.PathValue("id"), p)
	return h.wire(res.Value), res
}

func (h *Handler) cancel(c *call) (any, service.Result) {
	var in struct {
		IntentTrace json.RawMessage `json:"intent_trace,omitempty"`
	}
	if len(strings.TrimSpace(string(c.body))) > 0 {
		if err := c.decode(&in); err != nil {
			return nil, service.Result{Err: err}
		}
	}
	res := h.co.CancelSession(c.r.Context(), c.caller, c.idem, c.r.PathValue("merchant_id"), c.r.PathValue("id"))
	return h.wire(res.Value), res
}

func (h *Handler) delegate(c *call) (any, service.Result) {
	var in checkout.DelegateRequest
	if err := c.decode(&in); err != nil {
		return nil, service.Result{Err: err}
	}
	p, err := in.Params()
	if err != nil {
		return nil, service.Result{Err: err}
	}
	p.Signature, p.Timestamp, p.Body, p.IdempotencyKey = c.r.Header.Get("Signature"), c.r.Header.Get("Timestamp"), c.body, c.key
	res := h.co.DelegatePayment(c.r.Context(), c.caller, c.idem, p)
	return h.wire(res.Value), res
}

// errorJSON is ACP's Error.
type errorJSON struct {
	Type              string   `json:"type"`
	Code              string   `json:"code"`
	Message           string   `json:"message"`
	Param             string   `json:"param,omitempty"`
	SupportedVersions []string `json:"supported_versions,omitempty"`
}

// errorBody renders err in ACP's error shape with its status. Statuses
// are the REST API's (one table, rest.StatusOf), but that canceling a
// session that cannot be canceled is 405 as ACP says. A delegate_payment
// refusal of the card or its allowance is ACP's invalid_card.
func (h *Handler) errorBody(ep endpoint, err error) (int, []byte) {
	var e *pb.Error
	if !errors.As(err, &e) {
		h.log.Error("internal error", "err", err)
		e = &pb.Error{Code: pb.ErrInternal, Message: "an internal error occurred; it has been logged"}
	}
	status := rest.StatusOf(e)
	out := errorJSON{Type: "invalid_request", Code: string(e.Code), Message: e.Message, Param: jsonPath(e.Param)}
	switch {
	case status == http.StatusServiceUnavailable:
		out.Type = "service_unavailable"
	case status >= 500:
		out.Type = "processing_error"
	}
	if e.PaymentID != "" {
		out.Message += " (payment " + e.PaymentID + ")"
	}
	if e.Code == pb.ErrUnsupportedVersion {
		out.SupportedVersions = checkout.ACPVersions
	}
	if ep.name == "cancel" && e.Code == pb.ErrCheckoutState {
		status = http.StatusMethodNotAllowed
	}
	if ep.delegate {
		switch e.Code.Type() {
		case pb.TypeInvalidRequest:
			if !slices.Contains([]pb.Code{pb.ErrIdempotencyRequired, pb.ErrIdempotencyConflict, pb.ErrUnsupportedVersion}, e.Code) {
				out.Code = "invalid_card"
			}
		case pb.TypeRateLimited:
			out.Type, out.Code = "rate_limit_exceeded", "too_many_requests"
		}
	}
	b, _ := json.Marshal(out)
	return status, b
}

func (h *Handler) writeError(w http.ResponseWriter, ep endpoint, err error) {
	status, body := h.errorBody(ep, err)
	var e *pb.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter.Seconds())+0.999)))
	} else if pb.ErrorCode(err) == pb.ErrIdempotencyRunning || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, body)
}

// jsonPath is a body field's name as ACP's RFC 9535 JSONPath ("$.a.b[0]");
// headers are named as they are.
func jsonPath(param string) string {
	if param == "" || unicode.IsUpper(rune(param[0])) {
		return param
	}
	return "$." + param
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// jsonType refuses a body not declared as application/json (charset
// utf-8 allowed).
func jsonType(values []string) error {
	if len(values) == 1 {
		mt, params, err := mime.ParseMediaType(values[0])
		cs, ok := params["charset"]
		if err == nil && mt == "application/json" && (len(params) == 0 || (len(params) == 1 && ok && strings.EqualFold(cs, "utf-8"))) {
			return nil
		}
	}
	return pb.Errorf(pb.ErrUnsupportedMediaType, "Content-Type", "send the body as JSON, with one Content-Type: application/json")
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
