// Package rest is the toolkit with which the payments core and each
// capability offer their operations over Paybound's REST API: a route, the
// request as a handler sees it (its caller already authenticated, its body
// read and checked), strict decoding, idempotent runs, and the one table
// from error codes to HTTP statuses. internal/httpapi mounts the routes.
package rest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/strictjson"
)

// Route is one endpoint: the table the server mounts and the OpenAPI test
// checks against the document.
type Route struct {
	Method, Pattern string
	// Idempotent routes create or move money and require an Idempotency-Key.
	Idempotent bool
	// Public routes need no API key.
	Public bool
	// Secret routes answer with a secret (a new API key): their stored
	// idempotent responses are sealed.
	Secret bool
	// OneOp routes have no effect but through one ledger operation, run
	// with the request's context (service.Run): a signed request's nonce
	// is then spent in that operation's batch, not by a commit of its own
	// before the handler (ledger.NonceClaim). Its answer still waits for
	// the nonce; a replay's operation does not run.
	OneOp bool
	// Handler answers the request with a status and a value to encode as
	// JSON (or a Raw body), or an error; nil serves the OpenAPI document.
	Handler func(*Request) (status int, v any, err error)
}

// PathValue is the request's path wildcard name.
func (q *Request) PathValue(name string) string { return q.HTTP.PathValue(name) }

// Query is the request's query parameter name.
func (q *Request) Query(name string) string { return q.HTTP.URL.Query().Get(name) }

// StatusOf is the one table from error codes to HTTP statuses: by type,
// with a few codes that need their own status.
func StatusOf(err error) int {
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

// ErrorJSON renders err as the public error envelope. Errors that are not
// *pb.Error are internal: logged in full, shown as a generic message.
func ErrorJSON(log *slog.Logger, err error) (int, []byte) {
	var e *pb.Error
	if !errors.As(err, &e) {
		log.Error("internal error", "err", err)
		e = &pb.Error{Code: pb.ErrInternal, Message: "an internal error occurred; it has been logged"}
	}
	body, _ := json.Marshal(struct {
		Error *pb.Error `json:"error"`
	}{e})
	return StatusOf(e), body
}

// WriteError answers with err's envelope and status, and a Retry-After
// where the caller should wait.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	status, body := ErrorJSON(log, err)
	var e *pb.Error
	switch {
	case errors.As(err, &e) && e.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	case pb.ErrorCode(err) == pb.ErrIdempotencyRunning || status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	WriteRaw(w, status, body)
}

// WriteRaw answers with a JSON body as it is, newline-terminated.
func WriteRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(body)
	w.Write([]byte{'\n'})
}

// Request is one call in flight, as a handler sees it.
type Request struct {
	HTTP   *http.Request
	Ctx    context.Context
	Caller pb.Principal
	Body   []byte               // the POST body, read and checked (size, Content-Type)
	Idem   *service.Idempotency // set on idempotent routes
	Log    *slog.Logger
	// Bearer authenticates the request's API key (Authorization: Bearer),
	// for a public route that needs a caller for part of what it serves
	// (the log's entry bundles). Set on public routes.
	Bearer func() (pb.Principal, error)
}

// Decode reads the JSON body into v and, for an idempotent route, fixes the
// request hash over the decoded value (so that whitespace and field order do
// not matter). An empty body is {}. The body is decoded strictly (see
// strictjson): a document that another parser could read differently (a key
// twice at any depth, a key that matches a field only case-insensitively,
// invalid UTF-8) is refused, so that a proxy or an agent-side check that
// reads the body sees the request Paybound runs; unknown fields are refused
// too.
func (q *Request) Decode(v any) error {
	if len(bytes.Trim(q.Body, jsonSpace)) > 0 {
		if err := strictjson.Unmarshal(q.Body, v); err != nil {
			return DecodeError(err)
		}
	}
	if q.Idem != nil {
		canon, _ := json.Marshal(v)
		h := sha256.New()
		fmt.Fprintf(h, "%s %s\n", q.HTTP.Method, q.HTTP.URL.Path)
		h.Write(canon)
		copy(q.Idem.Hash[:], h.Sum(nil))
	}
	return nil
}

// DecodeError turns a decoding failure into the coded error a client can
// act on: which field, and what was wrong with it.
func DecodeError(err error) error {
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

// ErrReplayed marks a response served from the idempotency store.
var ErrReplayed = errors.New("replayed")

// Act runs an action on the resource {id} whose body must be empty (or
// {}), answering 200 with what it returns: cancel, revoke, deny.
func (q *Request) Act(action func(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result) (int, any, error) {
	var in struct{}
	if err := q.Decode(&in); err != nil {
		return 0, nil, err
	}
	id := q.HTTP.PathValue("id")
	return q.Run(200, func() service.Result { return action(q.Ctx, q.Caller, q.Idem, id) })
}

// idempotent prepares q.Idem's renderer for a call whose success answers
// with status, and turns the service's Result into the handler's return.
func (q *Request) Run(status int, call func() service.Result) (int, any, error) {
	if q.Idem != nil {
		q.Idem.Render = func(v any, err error) (int, []byte) {
			if err != nil {
				return ErrorJSON(q.Log, err)
			}
			b, merr := json.Marshal(v)
			if merr != nil {
				return ErrorJSON(q.Log, fmt.Errorf("couldn't encode response: %w", merr))
			}
			return status, b
		}
	}
	res := call()
	if res.Replayed {
		return 0, nil, ErrReplayed
	}
	return status, res.Value, res.Err
}

// ListParams reads ?limit= (default 10) and ?starting_after= (an ID with
// prefix).
func (q *Request) ListParams(prefix string) (limit int, after string, err error) {
	limit = 10
	if v := q.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > pb.MaxListLimit {
			return 0, "", pb.Errorf(pb.ErrParameterInvalid, "limit", "limit must be an integer from 1 to %d", pb.MaxListLimit)
		}
		limit = n
	}
	after = q.Query("starting_after")
	if after != "" && !pb.HasPrefix(after, prefix) {
		return 0, "", pb.Errorf(pb.ErrParameterInvalid, "starting_after", "starting_after must be an ID of this list (%s…)", prefix)
	}
	return limit, after, nil
}

// RequireCurrency refuses a missing currency.
func RequireCurrency(c string) error {
	if c == "" {
		return pb.Errorf(pb.ErrParameterMissing, "currency", "currency is required: an ISO 4217 code such as USD")
	}
	return nil
}

// ParseTime reads an optional RFC 3339 field.
func ParseTime(v *string, param string) (time.Time, error) {
	if v == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return time.Time{}, pb.Errorf(pb.ErrParameterInvalid, param, "%s must be an RFC 3339 timestamp such as 2026-12-01T09:00:00Z", param)
	}
	return t, nil
}

// jsonSpace is the white space JSON allows (RFC 8259 §2).
const jsonSpace = " \t\r\n"

// Raw is a response that is not JSON, or JSON whose exact bytes matter (a
// log entry): wrap writes Body as it is.
type Raw struct {
	ContentType string
	Body        []byte
	// Header holds more response headers (a page's
	// Content-Security-Policy, Vary).
	Header map[string]string
}

// CheckJWK refuses a public_key in which a member that Paybound reads is
// named with other letter cases ("X" for "x"): JWK member names are
// case-sensitive (RFC 7517 §4), so another parser ignores "X" where
// encoding/json would read it as the key. Other members (kid, use) are
// allowed, as JWKs carry them. Duplicates and invalid UTF-8 were refused
// with the body.
func CheckJWK(raw json.RawMessage) error {
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
