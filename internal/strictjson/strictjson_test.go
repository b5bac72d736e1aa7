package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/paybound/paybound/internal/strictjson"
)

// payment is shaped like the API's payment and mandate requests.
type payment struct {
	Amount     *int64            `json:"amount"`
	Currency   string            `json:"currency"`
	MerchantID string            `json:"merchant_id"`
	Metadata   map[string]string `json:"metadata"`
	Budget     *struct {
		Amount int64  `json:"amount"`
		Period string `json:"period"`
	} `json:"budget"`
	Schedule *struct {
		Days []string `json:"days"`
	} `json:"schedule"`
	Rules []struct {
		Name string `json:"name"`
	} `json:"rules"`
	PublicKey json.RawMessage `json:"public_key"`
	Extra     any             `json:"extra"`
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		kind      strictjson.Kind
		path      string
	}{
		{"duplicate key", `{"amount":1,"currency":"USD","amount":250}`, strictjson.DuplicateKey, "amount"},
		{"duplicate through an escape", `{"amount":1,"\u0061mount":250}`, strictjson.DuplicateKey, "amount"},
		{"duplicate in a nested object", `{"budget":{"amount":1,"period":"week","amount":5000}}`, strictjson.DuplicateKey, "budget.amount"},
		{"duplicate in metadata", `{"metadata":{"order":"1","order":"2"}}`, strictjson.DuplicateKey, "metadata.order"},
		{"duplicate in an array element", `{"rules":[{"name":"a"},{"name":"b","name":"c"}]}`, strictjson.DuplicateKey, "rules[1].name"},
		{"duplicate in a raw value", `{"public_key":{"x":"a","x":"b"}}`, strictjson.DuplicateKey, "public_key.x"},
		{"duplicate in an interface value", `{"extra":[{"a":1,"a":2}]}`, strictjson.DuplicateKey, "extra[0].a"},
		{"duplicate in a large object", `{"metadata":{` + manyKeys(40) + `,"k7":"again"}}`, strictjson.DuplicateKey, "metadata.k7"},
		{"case-only match", `{"MERCHANT_ID":"mch_1"}`, strictjson.CaseMismatch, "MERCHANT_ID"},
		{"case-only match after the field", `{"amount":1,"Amount":250}`, strictjson.CaseMismatch, "Amount"},
		{"case-only match in a nested object", `{"budget":{"Period":"week"}}`, strictjson.CaseMismatch, "budget.Period"},
		{"Kelvin sign folds to k", `{"public_\u212aey":{}}`, strictjson.CaseMismatch, "public_\u212aey"},
		{"unknown field", `{"amout":5}`, strictjson.UnknownField, "amout"},
		{"unknown nested field", `{"schedule":{"days":[],"hours":1}}`, strictjson.UnknownField, "schedule.hours"},
		{"invalid UTF-8 in a value", "{\"currency\":\"US\xff\"}", strictjson.InvalidUTF8, "currency"},
		{"invalid UTF-8 in a key", "{\"metadata\":{\"\xc3\":\"x\"}}", strictjson.InvalidUTF8, "metadata"},
		{"UTF-8 encoded surrogate", "{\"currency\":\"\xed\xa0\x80\"}", strictjson.InvalidUTF8, "currency"},
		{"lone high surrogate", `{"metadata":{"a":"\ud800"}}`, strictjson.InvalidUTF8, "metadata.a"},
		{"lone low surrogate", `{"currency":"\udc00"}`, strictjson.InvalidUTF8, "currency"},
		{"high surrogate before a letter", `{"currency":"\ud800\u0041"}`, strictjson.InvalidUTF8, "currency"},
		{"two objects", `{"amount":1}{"amount":250}`, strictjson.TrailingData, ""},
		{"garbage after", `{"amount":1} x`, strictjson.TrailingData, ""},
		{"malformed", `{"amount":`, strictjson.Syntax, "amount"},
		{"trailing comma", `{"amount":1,}`, strictjson.Syntax, ""},
		{"leading zero", `{"amount":01}`, strictjson.Syntax, ""},
		{"bare word", `{"currency":USD}`, strictjson.Syntax, "currency"},
		{"empty", `  `, strictjson.Syntax, ""},
		{"too deep", `{"extra":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, strictjson.TooDeep, "extra" + strings.Repeat("[0]", 63)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p payment
			err := strictjson.Unmarshal([]byte(c.doc), &p)
			var e *strictjson.Error
			if !errors.As(err, &e) {
				t.Fatalf("Unmarshal(%s) = %v, want a %v", c.doc, err, c.kind)
			}
			if e.Kind != c.kind || e.Path != c.path {
				t.Fatalf("Unmarshal(%s): %v %q (%v), want %v %q", c.doc, e.Kind, e.Path, e, c.kind, c.path)
			}
			if e.Offset < 0 || e.Offset > len(c.doc) || e.Error() == "" {
				t.Fatalf("offset %d of %d, message %q", e.Offset, len(c.doc), e)
			}
			if !reflect.DeepEqual(p, payment{}) {
				t.Fatalf("a refused document changed the value: %+v", p)
			}
		})
	}
}

func manyKeys(n int) string {
	var keys []string
	for i := range n {
		keys = append(keys, `"k`+strconv.Itoa(i)+`":"v"`)
	}
	return strings.Join(keys, ",")
}

func TestCaseMismatchNamesTheField(t *testing.T) {
	var p payment
	err := strictjson.Unmarshal([]byte(`{"Merchant_Id":"mch_1"}`), &p)
	var e *strictjson.Error
	if !errors.As(err, &e) || e.Field != "merchant_id" || !strings.Contains(e.Error(), `"merchant_id"`) {
		t.Fatalf("got %v (field %q), want the field merchant_id named", err, e.Field)
	}
}

func TestLongKeysAreCutInThePath(t *testing.T) {
	key := strings.Repeat("é", 100)
	var p payment
	err := strictjson.Unmarshal([]byte(`{"metadata":{"`+key+`":"1","`+key+`":"2"}}`), &p)
	var e *strictjson.Error
	if !errors.As(err, &e) || len(e.Path) > len("metadata.")+64+len("…") || !strings.HasSuffix(e.Path, "é…") {
		t.Fatalf("path %q (%d bytes)", e.Path, len(e.Path))
	}
}

// TestAcceptsAsEncodingJSON: what the strict decoder accepts, it decodes
// exactly as encoding/json does, type errors included.
func TestAcceptsAsEncodingJSON(t *testing.T) {
	for _, doc := range []string{
		`{"amount":1250,"currency":"USD","merchant_id":"mch_1","metadata":{"order":"1","Order":"2"}}`,
		`{"budget":{"amount":5000,"period":"week"},"schedule":{"days":["mon","tue"]}}`,
		`{"\u0061mount":5,"currency":"\u20ac \ud83d\ude00 \u00e9"}`,
		`{"public_key":{"kty":"OKP","X":"not matched: raw"},"extra":{"Any":[1,"a",null,{"b":true}]}}`,
		` {"rules":[{"name":"a"},{"name":"b"}]} ` + "\n",
		`{"amount":null,"budget":null,"metadata":null}`,
		`null`,
		`{"amount":"100"}`,
		`{"amount":1.5}`,
		`[1]`,
	} {
		var got, want payment
		err := strictjson.Unmarshal([]byte(doc), &got)
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.DisallowUnknownFields()
		werr := dec.Decode(&want)
		if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v, %v; encoding/json %+v, %v", doc, got, err, want, werr)
		}
		if err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				t.Fatalf("%s: %T %v, want encoding/json's type error", doc, err, err)
			}
		}
	}
}

func TestAllowUnknownFields(t *testing.T) {
	var jwk struct {
		Kty string `json:"kty"`
		X   string `json:"x"`
	}
	open := strictjson.Options{AllowUnknownFields: true}
	if err := open.Unmarshal([]byte(`{"kty":"OKP","x":"abc","kid":"k1","use":{"a":1}}`), &jwk); err != nil || jwk.X != "abc" {
		t.Fatalf("unknown members: %v %+v", err, jwk)
	}
	for doc, kind := range map[string]strictjson.Kind{
		`{"kty":"OKP","X":"attacker"}`:       strictjson.CaseMismatch,
		`{"kty":"OKP","x":"a","x":"b"}`:      strictjson.DuplicateKey,
		`{"kty":"OKP","kid":"a","kid":"b"}`:  strictjson.DuplicateKey,
		"{\"kty\":\"OKP\",\"kid\":\"\xff\"}": strictjson.InvalidUTF8,
	} {
		var e *strictjson.Error
		if err := open.Unmarshal([]byte(doc), &jwk); !errors.As(err, &e) || e.Kind != kind {
			t.Errorf("%s: %v, want %v", doc, err, kind)
		}
	}
}

func TestMaxDepth(t *testing.T) {
	var v any
	doc := []byte(strings.Repeat("[", 5) + strings.Repeat("]", 5))
	if err := (strictjson.Options{MaxDepth: 5}).Unmarshal(doc, &v); err != nil {
		t.Fatalf("depth 5 of 5: %v", err)
	}
	var e *strictjson.Error
	if err := (strictjson.Options{MaxDepth: 4}).Unmarshal(doc, &v); !errors.As(err, &e) || e.Kind != strictjson.TooDeep {
		t.Fatalf("depth 5 of 4: %v", err)
	}
}

type Inner struct {
	Note   string `json:"note"`
	Hidden string `json:"amount"` // hidden by the outer amount
	Both   string
}

type other struct{ Both string }

type withEmbedded struct {
	Amount int64 `json:"amount"`
	Inner
	*other
	Skip     string `json:"-"`
	Untagged int
	//lint:ignore SA5008 encoding/json names this field "-": the checker must too
	Dash string `json:"-,"`
	//lint:ignore SA5008 a malformed tag: encoding/json falls back to the field name
	Bad string `json:"a\"b"`
}

// TestFieldNames: the names the checker matches are encoding/json's,
// promotion, hiding and tag rules included.
func TestFieldNames(t *testing.T) {
	accept := []string{`{"amount":1,"note":"n"}`, `{"Untagged":1}`, `{"-":"dash"}`, `{"Bad":"b"}`}
	refuse := map[string]strictjson.Kind{
		`{"Skip":"x"}`:   strictjson.UnknownField, // json:"-"
		`{"Both":"x"}`:   strictjson.UnknownField, // two at the same depth hide each other
		`{"other":{}}`:   strictjson.UnknownField, // unexported embedded
		`{"NOTE":"n"}`:   strictjson.CaseMismatch, // promoted, then folded
		`{"untagged":1}`: strictjson.CaseMismatch,
		`{"a\"b":"b"}`:   strictjson.UnknownField, // an invalid tag name is not used
		`{"Inner":{}}`:   strictjson.UnknownField, // promoted, not a member
	}
	for _, doc := range accept {
		var got, want withEmbedded
		err := strictjson.Unmarshal([]byte(doc), &got)
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.DisallowUnknownFields()
		if werr := dec.Decode(&want); err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v %+v; encoding/json %v %+v", doc, err, got, werr, want)
		}
	}
	for doc, kind := range refuse {
		var v withEmbedded
		var e *strictjson.Error
		if err := strictjson.Unmarshal([]byte(doc), &v); !errors.As(err, &e) || e.Kind != kind {
			t.Errorf("%s: %v, want %v", doc, err, kind)
		}
		// encoding/json refuses the unknown ones too: the checker refuses no
		// more than it, there.
		if kind == strictjson.UnknownField {
			dec := json.NewDecoder(strings.NewReader(doc))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err == nil {
				t.Errorf("%s: encoding/json accepts it", doc)
			}
		}
	}
}

func TestRecursiveType(t *testing.T) {
	type node struct {
		Name string `json:"name"`
		Next *node  `json:"next"`
	}
	var n node
	if err := strictjson.Unmarshal([]byte(`{"name":"a","next":{"name":"b","next":{"name":"c"}}}`), &n); err != nil || n.Next.Next.Name != "c" {
		t.Fatalf("%v %+v", err, n)
	}
	var e *strictjson.Error
	if err := strictjson.Unmarshal([]byte(`{"next":{"next":{"NAME":"c"}}}`), &n); !errors.As(err, &e) || e.Path != "next.next.NAME" {
		t.Fatalf("%v", err)
	}
}

func TestCallerErrors(t *testing.T) {
	var p payment
	var ie *json.InvalidUnmarshalError
	if err := strictjson.Unmarshal([]byte(`{}`), p); !errors.As(err, &ie) {
		t.Errorf("non-pointer: %v", err)
	}
	var m map[int]string
	err := strictjson.Unmarshal([]byte(`{"1":"a","01":"b"}`), &m)
	var e *strictjson.Error
	if err == nil || errors.As(err, &e) || m != nil {
		t.Errorf("map[int]string: %v %v, want a caller error before reading", err, m)
	}
}

// BenchmarkDecode compares the cost of decoding one API body with the
// strict decoder and with what the API did before (encoding/json's Decoder
// with DisallowUnknownFields).
func BenchmarkDecode(b *testing.B) {
	bodies := map[string][]byte{
		"payment": []byte(`{"amount":1250,"currency":"USD","merchant_id":"mch_01jq8v6x3k2m4n5p6q7r8s9t0v","description":"flat white","capture_method":"manual","metadata":{"order":"1001","table":"7"}}`),
		"mandate": []byte(`{"agent_id":"agt_01jq8v6x3k2m4n5p6q7r8s9t0v","description":"breakfast","currency":"CNY","max_amount":3000,"budget":{"amount":15000,"period":"week"},"merchant_categories":["cafe","bakery"],"schedule":{"days":["mon","tue","wed","thu","fri"],"start":"07:00","end":"10:00","time_zone":"Asia/Shanghai"}}`),
	}
	type request struct {
		AgentID       string            `json:"agent_id"`
		Amount        *int64            `json:"amount"`
		Currency      string            `json:"currency"`
		MerchantID    string            `json:"merchant_id"`
		Description   string            `json:"description"`
		CaptureMethod string            `json:"capture_method"`
		Metadata      map[string]string `json:"metadata"`
		MaxAmount     *int64            `json:"max_amount"`
		Budget        *struct {
			Amount *int64 `json:"amount"`
			Period string `json:"period"`
		} `json:"budget"`
		Categories []string `json:"merchant_categories"`
		Schedule   *struct {
			Days     []string `json:"days"`
			Start    string   `json:"start"`
			End      string   `json:"end"`
			TimeZone string   `json:"time_zone"`
		} `json:"schedule"`
	}
	for _, name := range []string{"payment", "mandate"} {
		body := bodies[name]
		b.Run(name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var v request
				dec := json.NewDecoder(bytes.NewReader(body))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&v); err != nil || dec.More() {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/strictjson", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var v request
				if err := strictjson.Unmarshal(body, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
