package billing

import (
	"reflect"
	"strings"
	"testing"

	"github.com/paybound/paybound/internal/strictjson"
)

// decodeSeeds are bodies decodeEvents reads and bodies it must leave to
// strictjson.
var decodeSeeds = []string{
	`{"events":[{"id":"b1","customer":"usr_1","model":"bench","usage":{"input":1000,"output":250}}]}`,
	" {\n \"events\" : [ { \"id\" : \"e-1\" , \"customer\":\"agt_2\", \"meter\":\"llm_tokens\", \"reservation\":\"rsv_1\",\t\"timestamp\":\"2026-12-05T10:00:00.123Z\", \"model\":\"m\", \"usage\":{ } } , {} ] } \r\n",
	`{"events":[]}`,
	`{"events":[{"usage":{"input":-0,"output":9223372036854775799}}]}`,
	`{"events":[{"timestamp":"2026-12-05T10:00:00+01:00"}]}`,
	// Left to strictjson:
	`{"events":[{"id":"b1","id":"b2"}]}`,
	`{"events":[{"ID":"b1"}]}`,
	`{"events":[{"id":"b\u0031"}]}`,
	`{"events":[{"id":"bé"}]}`,
	`{"events":[{"id":null}]}`,
	`{"events":null}`,
	`{"events":[null]}`,
	`{"events":[{"usage":{"input":1.0}}]}`,
	`{"events":[{"usage":{"input":1e3}}]}`,
	`{"events":[{"usage":{"input":01}}]}`,
	`{"events":[{"usage":{"input":99999999999999999999}}]}`,
	`{"events":[{"usage":{"input":1,"input":2}}]}`,
	`{"events":[{"meter":"mtr_1","data":{"n":1}}]}`,
	`{"events":[{"timestamp":"yesterday"}]}`,
	`{"events":[{"id":"b1"}],"more":1}`,
	`{"events":[{"id":"b1"}]} x`,
	`{"events":[{"id":"b1"},]}`,
	`{"events":[{"id":"b1",}]}`,
	`{"events":[{"id":"b1"}]`,
	`{"events":[{"id":"b1"} {"id":"b2"}]}`,
	`{"events":[{"id":"b1"}],"events":[]}`,
	`[]`,
	``,
}

// TestDecodeEvents: decodeEvents reads the usual bodies, and what it
// reads equals what strictjson reads; every body outside its shape is
// left to strictjson.
func TestDecodeEvents(t *testing.T) {
	for i, s := range decodeSeeds {
		got, ok := decodeEvents([]byte(s))
		if want := i < 5; ok != want {
			t.Errorf("decodeEvents(%q) read = %v, want %v", s, ok, want)
		}
		if ok {
			checkLikeStrict(t, []byte(s), got)
		}
	}
	// A thousand events, as a provider sends them.
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":"b` + strings.Repeat("7", i%9+1) + `","customer":"usr_1","model":"bench","usage":{"input":1000,"output":250}}`)
	}
	b.WriteString(`]}`)
	got, ok := decodeEvents([]byte(b.String()))
	if !ok || len(got) != 1000 {
		t.Fatalf("a batch of 1,000 events: read %v, %d events", ok, len(got))
	}
	checkLikeStrict(t, []byte(b.String()), got)
}

// checkLikeStrict fails t unless strictjson reads body as got.
func checkLikeStrict(t *testing.T, body []byte, got []Event) {
	t.Helper()
	var in struct {
		Events []Event `json:"events"`
	}
	if err := strictjson.Unmarshal(body, &in); err != nil {
		t.Fatalf("decodeEvents read %q, which strictjson refuses: %v", body, err)
	}
	if !reflect.DeepEqual(in.Events, got) {
		t.Fatalf("decodeEvents(%q) = %+v; strictjson reads %+v", body, got, in.Events)
	}
}

// FuzzDecodeEvents: whatever decodeEvents reads, strictjson reads the
// same.
func FuzzDecodeEvents(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, ok := decodeEvents(body); ok {
			checkLikeStrict(t, body, got)
		}
	})
}
