package httpapi

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/paybound/paybound/internal/agentid"
	"github.com/paybound/paybound/internal/billing"
	"github.com/paybound/paybound/internal/checkout"
	"github.com/paybound/paybound/internal/confirm"
	"github.com/paybound/paybound/internal/disputes"
	"github.com/paybound/paybound/internal/mandatereqs"
	"github.com/paybound/paybound/internal/mandates"
	"github.com/paybound/paybound/internal/paylinks"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/settlement"
	"github.com/paybound/paybound/internal/signin"
	"github.com/paybound/paybound/internal/tlog"
	"github.com/paybound/paybound/internal/translog"
	"github.com/paybound/paybound/internal/webhooks"
	"github.com/paybound/paybound/internal/x402pay"
)

// The checks below take the decoded document and return the problems they
// find, so that TestOpenAPIChecksCatchMistakes can prove each of them fails
// on a broken document.

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func decodeOpenAPI(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

type operation struct {
	method, path string // "POST", "/v1/payments"
	op, item     map[string]any
}

func (o operation) String() string { return o.method + " " + o.path }

// operations lists the document's operations, sorted by path and method.
func operations(doc map[string]any) []operation {
	paths, _ := doc["paths"].(map[string]any)
	var ops []operation
	for path, v := range paths {
		item, _ := v.(map[string]any)
		for _, m := range httpMethods {
			if op, ok := item[m].(map[string]any); ok {
				ops = append(ops, operation{method: strings.ToUpper(m), path: path, op: op, item: item})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].String() < ops[j].String() })
	return ops
}

// resolvePointer follows a local reference ("#/components/schemas/Error").
func resolvePointer(doc map[string]any, ref string) (any, bool) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// deref returns v, or what it refers to when it is a Reference Object.
func deref(doc map[string]any, v any) map[string]any {
	for range 10 { // bound chains of references
		m, _ := v.(map[string]any)
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		v, _ = resolvePointer(doc, ref)
	}
	return nil
}

// routeKey names rt as operation.String() does: a ServeMux wildcard that
// takes the rest of the path, {name...}, is the OpenAPI parameter {name}.
func routeKey(rt Route) string {
	return rt.Method + " " + strings.ReplaceAll(rt.Pattern, "...}", "}")
}

// checkRoutes compares the document's operations with the server's routes.
func checkRoutes(doc map[string]any, routes []Route) []string {
	want := map[string]bool{}
	for _, rt := range routes {
		want[routeKey(rt)] = true
	}
	got := map[string]bool{}
	for _, o := range operations(doc) {
		got[o.String()] = true
	}
	var problems []string
	for k := range want {
		if !got[k] {
			problems = append(problems, "route not in openapi.json: "+k)
		}
	}
	for k := range got {
		if !want[k] {
			problems = append(problems, "operation in openapi.json with no route in New(): "+k)
		}
	}
	sort.Strings(problems)
	return problems
}

// checkOperationIDs requires a unique operationId and a summary on every
// operation.
func checkOperationIDs(doc map[string]any) []string {
	var problems []string
	seen := map[string]string{}
	for _, o := range operations(doc) {
		id, _ := o.op["operationId"].(string)
		switch {
		case id == "":
			problems = append(problems, o.String()+": no operationId")
		case seen[id] != "":
			problems = append(problems, fmt.Sprintf("%s: operationId %q is also used by %s", o, id, seen[id]))
		default:
			seen[id] = o.String()
		}
		if s, _ := o.op["summary"].(string); strings.TrimSpace(s) == "" {
			problems = append(problems, o.String()+": no summary")
		}
	}
	return problems
}

// checkRefs requires every $ref to point at an existing component.
func checkRefs(doc map[string]any) []string {
	var problems []string
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"]; ok {
				s, _ := ref.(string)
				if !strings.HasPrefix(s, "#/components/") {
					problems = append(problems, fmt.Sprintf("%s: $ref %v is not a local component", at, ref))
				} else if _, ok := resolvePointer(doc, s); !ok {
					problems = append(problems, fmt.Sprintf("%s: $ref %s does not resolve", at, s))
				}
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(at+"/"+k, v[k])
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s/%d", at, i), e)
			}
		}
	}
	walk("#", doc)
	return problems
}

// isIdempotencyKey reports whether the parameter p (or the one it refers
// to) is the Idempotency-Key header.
func isIdempotencyKey(doc map[string]any, p any) bool {
	pm := deref(doc, p)
	name, _ := pm["name"].(string)
	return pm["in"] == "header" && http.CanonicalHeaderKey(name) == "Idempotency-Key"
}

// idempotencyKeyParam returns the operation's Idempotency-Key header
// parameter (from the operation or its path item), or nil.
func idempotencyKeyParam(doc map[string]any, o operation) map[string]any {
	for _, list := range []any{o.op["parameters"], o.item["parameters"]} {
		params, _ := list.([]any)
		for _, p := range params {
			if isIdempotencyKey(doc, p) {
				return deref(doc, p)
			}
		}
	}
	return nil
}

// checkIdempotencyKeys requires a required Idempotency-Key header of at most
// 255 characters on exactly the idempotent routes.
func checkIdempotencyKeys(doc map[string]any, routes []Route) []string {
	idempotent := map[string]bool{}
	for _, rt := range routes {
		idempotent[routeKey(rt)] = rt.Idempotent
	}
	var problems []string
	for _, o := range operations(doc) {
		p := idempotencyKeyParam(doc, o)
		switch {
		case !idempotent[o.String()] && p != nil:
			problems = append(problems, o.String()+": documents an Idempotency-Key, but the route is not idempotent")
		case idempotent[o.String()] && p == nil:
			problems = append(problems, o.String()+": idempotent route without an Idempotency-Key header parameter")
		case idempotent[o.String()]:
			if p["required"] != true {
				problems = append(problems, o.String()+": Idempotency-Key is not required")
			}
			schema, _ := p["schema"].(map[string]any)
			if n, _ := schema["maxLength"].(float64); n != 255 {
				problems = append(problems, fmt.Sprintf("%s: Idempotency-Key maxLength is %v, not 255", o, schema["maxLength"]))
			}
		}
	}
	return problems
}

// checkSecurity requires bearer auth globally and `security: []` on exactly
// the public routes.
func checkSecurity(doc map[string]any, routes []Route) []string {
	var problems []string
	if global, _ := doc["security"].([]any); len(global) == 0 {
		problems = append(problems, "no global security requirement")
	}
	public := map[string]bool{}
	for _, rt := range routes {
		public[routeKey(rt)] = rt.Public
	}
	for _, o := range operations(doc) {
		sec, set := o.op["security"].([]any)
		open := set && len(sec) == 0
		if public[o.String()] && !open {
			problems = append(problems, o.String()+": public route without `security: []`")
		}
		if !public[o.String()] && open {
			problems = append(problems, o.String()+": route needs an API key but is documented as public")
		}
	}
	return problems
}

func routes() []Route {
	ids := agentid.New(nil, nil, nil)
	cfm, err := confirm.New(nil, nil, confirm.Config{})
	if err != nil {
		panic(err)
	}
	key, _, err := tlog.NewKey("paybound.test/log")
	if err != nil {
		panic(err)
	}
	log, err := translog.New(nil, nil, translog.Config{Key: key})
	if err != nil {
		panic(err)
	}
	links, err := paylinks.New(nil, nil, paylinks.Config{PublicURL: "http://127.0.0.1:8080"})
	if err != nil {
		panic(err)
	}
	co, err := checkout.New(nil, nil, checkout.Config{CardKey: make([]byte, 32), BaseURL: "http://localhost"})
	if err != nil {
		panic(err)
	}
	_, hookKey, _ := ed25519.GenerateKey(nil)
	hooks, err := webhooks.New(nil, nil, nil, webhooks.Config{SigningKey: hookKey})
	if err != nil {
		panic(err)
	}
	bill, err := billing.New(nil, nil, billing.Config{})
	if err != nil {
		panic(err)
	}
	return New(nil, nil, ids, ids, disputes.New(nil, log, nil), cfm, log, mandates.New(nil, nil, mandates.Config{}), riskctl.New(nil, nil),
		links, settlement.New(nil, settlement.Config{}), co, hooks, x402Facilitator(), bill, mandatereqs.New(nil, nil, nil, mandatereqs.Config{}), signIn()).Routes()
}

func signIn() *signin.Service {
	s, err := signin.New(nil, signin.Config{Key: make([]byte, 32)})
	if err != nil {
		panic(err)
	}
	return s
}

func x402Facilitator() *x402pay.Service {
	f, err := x402pay.New(nil, nil, x402pay.Config{Network: "paybound:test"})
	if err != nil {
		panic(err)
	}
	return f
}

func report(t *testing.T, what string, problems []string) {
	t.Helper()
	if len(problems) > 0 {
		t.Errorf("openapi.json: %s:\n\t%s", what, strings.Join(problems, "\n\t"))
	}
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := decodeOpenAPI(t, OpenAPI())
	if v := doc["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] != "Paybound API" || info["version"] != "1" {
		t.Errorf("info = %v, want title Paybound API, version 1", info)
	}
	if len(operations(doc)) == 0 {
		t.Error("the document has no operations")
	}
}

// TestOpenAPIServed: the served document is the embedded one, with its
// server the address the request reached (--addr, or a proxy's host).
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ host, proto, want string }{
		{"127.0.0.1:9999", "", "http://127.0.0.1:9999"},
		{"pay.example.com", "https", "https://pay.example.com"},
		{`evil"host`, "", "http://127.0.0.1:8080"}, // not a host: the document as written
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/openapi.json", nil)
		r.Host = c.host
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		New(nil, nil, nil).ServeHTTP(rec, r)
		if rec.Code != 200 {
			t.Fatalf("GET /v1/openapi.json: status %d", rec.Code)
		}
		want := bytes.Replace(bytes.TrimSpace(OpenAPI()), []byte(`"url": "http://127.0.0.1:8080"`), []byte(`"url": "`+c.want+`"`), 1)
		if !bytes.Equal(bytes.TrimSpace(rec.Body.Bytes()), want) {
			t.Errorf("GET /v1/openapi.json on %s does not serve the embedded document with server %s", c.host, c.want)
		}
		var doc struct {
			Servers []struct{ URL string } `json:"servers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || len(doc.Servers) != 1 || doc.Servers[0].URL != c.want {
			t.Errorf("servers on %s: %+v %v", c.host, doc.Servers, err)
		}
	}
}

func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	report(t, "operations differ from New().Routes()", checkRoutes(decodeOpenAPI(t, OpenAPI()), routes()))
}

func TestOpenAPIOperationIDs(t *testing.T) {
	t.Parallel()
	report(t, "operationId or summary", checkOperationIDs(decodeOpenAPI(t, OpenAPI())))
}

func TestOpenAPIRefs(t *testing.T) {
	t.Parallel()
	report(t, "unresolved $ref", checkRefs(decodeOpenAPI(t, OpenAPI())))
}

func TestOpenAPIIdempotencyKey(t *testing.T) {
	t.Parallel()
	report(t, "Idempotency-Key", checkIdempotencyKeys(decodeOpenAPI(t, OpenAPI()), routes()))
}

func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()
	report(t, "security", checkSecurity(decodeOpenAPI(t, OpenAPI()), routes()))
}

// TestOpenAPIChecksCatchMistakes breaks a copy of the document in the ways
// the checks above guard against and requires each check to notice.
func TestOpenAPIChecksCatchMistakes(t *testing.T) {
	t.Parallel()
	rts := routes()
	opAt := func(doc map[string]any, method, path string) map[string]any {
		t.Helper()
		item, _ := doc["paths"].(map[string]any)[path].(map[string]any)
		op, ok := item[method].(map[string]any)
		if !ok {
			t.Fatalf("no %s %s in the document", method, path)
		}
		return op
	}
	dropIdemKey := func(doc map[string]any) {
		op := opAt(doc, "post", "/v1/payments")
		params, _ := op["parameters"].([]any)
		op["parameters"] = slices.DeleteFunc(slices.Clone(params), func(p any) bool { return isIdempotencyKey(doc, p) })
	}
	for _, tc := range []struct {
		name   string
		mutate func(doc map[string]any)
		check  func(doc map[string]any) []string
	}{
		{"missing path", func(doc map[string]any) { delete(doc["paths"].(map[string]any), "/v1/topups") },
			func(doc map[string]any) []string { return checkRoutes(doc, rts) }},
		{"missing method", func(doc map[string]any) {
			delete(doc["paths"].(map[string]any)["/v1/payments"].(map[string]any), "get")
		}, func(doc map[string]any) []string { return checkRoutes(doc, rts) }},
		{"extra operation", func(doc map[string]any) {
			doc["paths"].(map[string]any)["/v1/nothing"] = map[string]any{"get": map[string]any{}}
		}, func(doc map[string]any) []string { return checkRoutes(doc, rts) }},
		{"duplicate operationId", func(doc map[string]any) {
			opAt(doc, "get", "/v1/payments")["operationId"] = opAt(doc, "post", "/v1/payments")["operationId"]
		}, checkOperationIDs},
		{"no operationId", func(doc map[string]any) { delete(opAt(doc, "get", "/v1/balance"), "operationId") }, checkOperationIDs},
		{"no summary", func(doc map[string]any) { delete(opAt(doc, "get", "/v1/balance"), "summary") }, checkOperationIDs},
		{"dangling $ref", func(doc map[string]any) {
			delete(doc["components"].(map[string]any)["schemas"].(map[string]any), "Payment")
		}, checkRefs},
		{"remote $ref", func(doc map[string]any) {
			opAt(doc, "get", "/healthz")["x-test"] = map[string]any{"$ref": "https://example.com/schema.json"}
		}, checkRefs},
		{"idempotent route without key", dropIdemKey,
			func(doc map[string]any) []string { return checkIdempotencyKeys(doc, rts) }},
		{"key on a non-idempotent route", func(doc map[string]any) {
			op := opAt(doc, "get", "/v1/payments/{id}")
			op["parameters"] = append(op["parameters"].([]any), map[string]any{"$ref": "#/components/parameters/IdempotencyKey"})
		}, func(doc map[string]any) []string { return checkIdempotencyKeys(doc, rts) }},
		{"key not required", func(doc map[string]any) {
			dropIdemKey(doc)
			op := opAt(doc, "post", "/v1/payments")
			op["parameters"] = append(op["parameters"].([]any), map[string]any{
				"name": "idempotency-key", "in": "header", "schema": map[string]any{"type": "string", "maxLength": 255.0}})
		}, func(doc map[string]any) []string { return checkIdempotencyKeys(doc, rts) }},
		{"public route needs auth", func(doc map[string]any) { delete(opAt(doc, "get", "/healthz"), "security") },
			func(doc map[string]any) []string { return checkSecurity(doc, rts) }},
		{"private route open", func(doc map[string]any) { opAt(doc, "get", "/v1/balance")["security"] = []any{} },
			func(doc map[string]any) []string { return checkSecurity(doc, rts) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := decodeOpenAPI(t, OpenAPI())
			if p := tc.check(doc); len(p) > 0 {
				t.Skipf("the real document already fails this check (reported by its own test): %v", p)
			}
			tc.mutate(doc)
			if p := tc.check(doc); len(p) == 0 {
				t.Error("the check did not notice the mistake")
			} else {
				t.Logf("noticed: %s", strings.Join(p, "; "))
			}
		})
	}
}
