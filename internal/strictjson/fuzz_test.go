package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/paybound/paybound/internal/strictjson"
)

// fuzzTarget holds what the checker must get right: nested structs, maps
// of strings and of structs, lists of a recursive struct, raw and interface
// values, a promoted field and a hidden one, untagged and skipped fields,
// and names that non-ASCII letters fold to (k: the Kelvin sign K; s: ſ).
type fuzzTarget struct {
	Amount   *int64                `json:"amount"`
	Currency string                `json:"currency"`
	Metadata map[string]string     `json:"metadata"`
	Budget   *fuzzBudget           `json:"budget"`
	Days     []string              `json:"days"`
	Items    []fuzzItem            `json:"items"`
	ByName   map[string]fuzzBudget `json:"by_name"`
	Raw      json.RawMessage       `json:"raw"`
	Any      any                   `json:"any"`
	OK       bool                  `json:"ok"`
	K        string                `json:"k"`
	S        string                `json:"s"`
	fuzzEmbedded
	Skip     string `json:"-"`
	Untagged int
}

type fuzzBudget struct {
	Amount int64  `json:"amount"`
	Period string `json:"period"`
}

type fuzzItem struct {
	Name string    `json:"name"`
	Next *fuzzItem `json:"next"`
}

type fuzzEmbedded struct {
	Note   string `json:"note"`
	Hidden int64  `json:"amount"` // hidden by fuzzTarget.Amount
}

// schema is fuzzTarget's members written out by hand, so that the oracle
// below does not share the checker's reading of struct tags. A nil *schema
// takes anything.
type schema struct {
	fields        map[string]*schema
	elem          *schema
	isMap, isList bool
}

var fuzzSchema = func() *schema {
	budget := &schema{fields: map[string]*schema{"amount": nil, "period": nil}}
	item := &schema{fields: map[string]*schema{"name": nil}}
	item.fields["next"] = item
	return &schema{fields: map[string]*schema{
		"amount": nil, "currency": nil, "metadata": nil, "budget": budget, "days": nil,
		"items": {isList: true, elem: item}, "by_name": {isMap: true, elem: budget},
		"raw": nil, "any": nil, "ok": nil, "k": nil, "s": nil, "note": nil, "Untagged": nil,
	}}
}()

// FuzzStrict holds the strict decoder to encoding/json: what both accept,
// they decode alike; what encoding/json reads one way and others may read
// another (a key twice, a key that matches a field only case-insensitively,
// invalid UTF-8, an unpaired surrogate), the strict one refuses, without
// touching the value; and it refuses nothing else that encoding/json takes,
// but for nesting deeper than its limit.
func FuzzStrict(f *testing.F) {
	for _, s := range []string{
		`{"amount":1,"currency":"USD","amount":250}`,
		`{"AMOUNT":250}`,
		`{"budget":{"amount":100,"period":"week","amount":500000}}`,
		`{"items":[{"name":"a","next":{"Name":"b"}}]}`,
		`{"by_name":{"x":{"amount":1},"x":{"amount":2}}}`,
		`{"metadata":{"a":"1","A":"2"},"any":{"a":1,"a":2}}`,
		"{\"currency\":\"\xffUSD\"}",
		`{"currency":"\ud800"}`,
		`{"\u212a":"kelvin","s":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want fuzzTarget
		err := strictjson.Unmarshal(data, &got)
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		werr := dec.Decode(&want)
		if !json.Valid(data) {
			werr = errors.New("not one JSON value")
		}
		ambiguous, deep := "", false
		if json.Valid(data) {
			ambiguous, deep = oracle(data)
		}
		var e *strictjson.Error
		switch {
		case err == nil:
			if werr != nil {
				t.Fatalf("accepted what encoding/json refuses (%v): %q", werr, data)
			}
			if ambiguous != "" {
				t.Fatalf("accepted an ambiguous document (%s): %q", ambiguous, data)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %q as %+v; encoding/json: %+v", data, got, want)
			}
		case errors.As(err, &e):
			if !reflect.DeepEqual(got, fuzzTarget{}) {
				t.Fatalf("refused %q (%v) but wrote %+v", data, err, got)
			}
			if e.Error() == "" || !utf8.ValidString(e.Path) || !utf8.ValidString(e.Error()) || e.Offset < 0 || e.Offset > len(data) {
				t.Fatalf("error %q: path %q, offset %d of %d", e, e.Path, e.Offset, len(data))
			}
			if werr == nil && ambiguous == "" && !deep {
				t.Fatalf("refused (%v) what encoding/json reads unambiguously: %q", err, data)
			}
		default: // encoding/json's own error, after the checks
			if werr == nil || err.Error() != werr.Error() {
				t.Fatalf("error %v, encoding/json's %v: %q", err, werr, data)
			}
			if ambiguous != "" {
				t.Fatalf("passed an ambiguous document (%s) to encoding/json: %q", ambiguous, data)
			}
		}
	})
}

// oracle says why a valid JSON document is ambiguous ("" when it is not),
// and whether it nests deeper than the default limit, by means other than
// the checker's: encoding/json's tokens, a generic decoding matched with
// strings.EqualFold (encoding/json's documented matching) against the
// hand-written schema, and utf8.Valid.
func oracle(data []byte) (ambiguous string, deep bool) {
	dup, depth := duplicatesAndDepth(data)
	deep = depth > strictjson.DefaultMaxDepth
	switch {
	case !utf8.Valid(data):
		return "invalid UTF-8", deep
	case loneSurrogate(data):
		return "unpaired surrogate", deep
	case dup:
		return "duplicate key", deep
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err == nil && caseOnly(tree, fuzzSchema) {
		return "case-only match", deep
	}
	return "", deep
}

// duplicatesAndDepth walks encoding/json's tokens: whether an object has a
// key twice, and how deep arrays and objects nest.
func duplicatesAndDepth(data []byte) (dup bool, depth int) {
	type frame struct {
		keys      map[string]bool // nil in an array
		expectKey bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return dup, depth
		}
		if n := len(stack); n > 0 && stack[n-1].expectKey {
			if k, ok := tok.(string); ok {
				dup = dup || stack[n-1].keys[k]
				stack[n-1].keys[k] = true
				stack[n-1].expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
		depth = max(depth, len(stack))
	}
}

// loneSurrogate reports a \u escape of a surrogate that is not a high one
// followed by a \u escape of a low one, in a valid JSON document.
func loneSurrogate(data []byte) bool {
	hex := func(i int) (rune, bool) {
		if i+4 > len(data) {
			return 0, false
		}
		n, err := strconv.ParseUint(string(data[i:i+4]), 16, 16)
		return rune(n), err == nil
	}
	in := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case !in:
			in = c == '"'
		case c == '"':
			in = false
		case c == '\\' && data[i+1] == 'u':
			r, _ := hex(i + 2)
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return true
			case r >= 0xd800 && r <= 0xdbff:
				if !bytes.HasPrefix(data[i+6:], []byte(`\u`)) {
					return true
				}
				if lo, ok := hex(i + 8); !ok || lo < 0xdc00 || lo > 0xdfff {
					return true
				}
				i += 11
			default:
				i += 5
			}
		case c == '\\':
			i++
		}
	}
	return false
}

// caseOnly reports a key of an object in v that names a member of s only
// case-insensitively.
func caseOnly(v any, s *schema) bool {
	if s == nil {
		return false
	}
	switch {
	case s.isList:
		list, _ := v.([]any)
		for _, e := range list {
			if caseOnly(e, s.elem) {
				return true
			}
		}
	case s.isMap:
		m, _ := v.(map[string]any)
		for _, e := range m {
			if caseOnly(e, s.elem) {
				return true
			}
		}
	default:
		m, _ := v.(map[string]any)
		for k, e := range m {
			if sub, ok := s.fields[k]; ok {
				if caseOnly(e, sub) {
					return true
				}
				continue
			}
			for name := range s.fields {
				if strings.EqualFold(k, name) {
					return true
				}
			}
		}
	}
	return false
}
