package paybound

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// refEntry is an entry as encoding/json writes it: EncodeLogEntry's
// reference, which it must match byte for byte.
type refEntry struct {
	Actor   Actor     `json:"actor"`
	Data    any       `json:"data,omitempty"`
	Prev    string    `json:"prev,omitempty"`
	Subject string    `json:"subject"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	V       int       `json:"v"`
}

func refEncode(ev LogEvent, at time.Time, prev *[32]byte) ([]byte, error) {
	e := refEntry{Actor: ev.Actor, Data: ev.Data, Subject: ev.Subject, Time: at.UTC(), Type: ev.Type, V: LogVersion}
	if prev != nil {
		e.Prev = hexString(prev[:])
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

type sampleData struct {
	Amount int64             `json:"amount"`
	Meta   map[string]string `json:"meta,omitempty"`
	Note   string            `json:"note"`
	When   *time.Time        `json:"when,omitempty"`
}

// checkEncoding fails t unless EncodeLogEntry and encoding/json agree on
// the entry, bytes or error.
func checkEncoding(t *testing.T, ev LogEvent, at time.Time, prev *[32]byte) {
	t.Helper()
	got, gerr := EncodeLogEntry(ev, at, prev)
	want, werr := refEncode(ev, at, prev)
	if (gerr != nil) != (werr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("EncodeLogEntry(%+v, %v) =\n%s, %v\nencoding/json:\n%s, %v", ev, at, got, gerr, want, werr)
	}
}

// TestEncodeLogEntryMatchesEncodingJSON: the hand-written envelope is
// encoding/json's encoding of the entry, for every shape of data and the
// strings that encoding/json escapes.
func TestEncodeLogEntryMatchesEncodingJSON(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	var nilData *sampleData
	datas := []any{nil, sampleData{Amount: 5, Note: "a <b> & \"c\"\n\u2028 ü \xff"}, &sampleData{Meta: map[string]string{"z": "1", "a": "2"}, When: &when},
		nilData, map[string]any{"b": 1, "a": []int{1, 2}}, json.RawMessage(`{"x":1}`), "text", 42, true, []byte("bytes")}
	strs := []string{"", "pay_01m8fs682sx2c1smbj979z8jnw", `quote " and \ back`, "tab\tnew\nline\r\x00\x1f\x7f", "ü ☃ \u2028\u2029",
		"\xff\xfe invalid", "<script>&amp;</script>", "\b\f"}
	times := []time.Time{when, time.Date(2026, 11, 28, 0, 34, 25, 497465510, time.UTC), time.Date(2026, 11, 28, 0, 0, 0, 0, time.FixedZone("X", 5*3600)),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}
	prev := [32]byte{0xde, 0xad, 0xbe, 0xef, 31: 0x01}
	for _, d := range datas {
		for _, s := range strs {
			for i, at := range times {
				p := &prev
				if i%2 == 1 {
					p = nil
				}
				checkEncoding(t, LogEvent{Type: LogPaymentCreated, Subject: s, Actor: Actor{Role: RoleAgent, ID: s, Assurance: AssuranceSigned}, Data: d}, at, p)
				checkEncoding(t, LogEvent{Type: s, Subject: "pay_a", Actor: Actor{Role: Role(s), ID: "usr_a"}, Data: d}, at, p)
			}
		}
	}
	// Years encoding/json refuses are refused.
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := EncodeLogEntry(LogEvent{Type: LogPaymentCreated, Subject: "pay_a"}, at, nil); err == nil {
			t.Errorf("EncodeLogEntry at %v succeeded", at)
		}
	}
	// Data encoding/json cannot encode is refused.
	if _, err := EncodeLogEntry(LogEvent{Type: LogPaymentCreated, Subject: "pay_a", Data: map[string]any{"f": func() {}}}, when, nil); err == nil {
		t.Error("EncodeLogEntry of a func succeeded")
	}
}

func FuzzEncodeLogEntry(f *testing.F) {
	f.Add("pay_a", "usr_a", "payment.created", "note", int64(1), true)
	f.Add("\u2028\"\\", "\xff", "<&>", "\x00\n", int64(-5), false)
	f.Fuzz(func(t *testing.T, subject, id, typ, note string, nanos int64, withPrev bool) {
		var prev *[32]byte
		if withPrev {
			prev = &[32]byte{byte(nanos)}
		}
		at := time.Unix(1_800_000_000, 0).Add(time.Duration(nanos))
		checkEncoding(t, LogEvent{Type: typ, Subject: subject, Actor: Actor{Role: RoleUser, ID: id, Assurance: Assurance(note)},
			Data: sampleData{Note: note, Amount: nanos}}, at, prev)
	})
}

func BenchmarkEncodeLogEntry(b *testing.B) {
	ev := LogEvent{Type: LogPaymentCreated, Subject: "pay_01m8fs682sx2c1smbj979z8jnw",
		Actor: Actor{Role: RoleUser, ID: "usr_01m8fs5ybn2skjb3hg9cw6c2hp", Assurance: AssuranceUser},
		Data:  sampleData{Amount: 450, Note: "mch_01m8fs5ybnq86q5wjzeksfez8k", Meta: map[string]string{"order": "A-10293"}}}
	at := time.Date(2026, 11, 28, 0, 34, 25, 497465510, time.UTC)
	prev := [32]byte{1, 2, 3}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeLogEntry(ev, at, &prev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := refEncode(ev, at, &prev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCanonicalByConstructionCatches: fields out of JSON-name order, at any
// depth, and floats are reported; sorted integer and string fields pass.
func TestCanonicalByConstructionCatches(t *testing.T) {
	type inner struct {
		B int `json:"b"`
		A int `json:"a"`
	}
	type good struct {
		Amount int64  `json:"amount"`
		ID     string `json:"id"`
		Skip   string `json:"-"`
	}
	for _, c := range []struct {
		v    any
		fail bool
	}{
		{good{}, false},
		{inner{}, true},
		{struct {
			A inner `json:"a"`
		}{}, true},
		{struct {
			Rate float64 `json:"rate"`
		}{}, true},
	} {
		if err := CanonicalByConstruction(reflect.TypeOf(c.v)); (err != nil) != c.fail {
			t.Errorf("%T: %v; want a failure: %v", c.v, err, c.fail)
		}
	}
}
