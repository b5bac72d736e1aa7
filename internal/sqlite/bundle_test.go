package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
)

func TestBundle(t *testing.T) {
	recs := make([]pb.LogRecord, 150)
	for i := range recs {
		recs[i] = pb.LogRecord{Subject: "pay_" + strings.Repeat("a", i%5), Body: bytes.Repeat([]byte{byte('a' + i%26)}, i*7)}
	}
	recs[100].Body = bytes.Repeat([]byte{'x'}, pb.MaxLogEntryBytes)
	bs, err := bundle(1000, recs)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(1000)
	for _, b := range bs {
		n := b.size - b.first
		if b.first != next || n < 1 || n > pb.MaxBundleEntries || (n > 1 && len(b.entries) > maxBundleBytes) {
			t.Fatalf("bundle from %d to %d, %d bytes; want it from %d, 1 to %d entries, at most %d bytes unless one entry",
				b.first, b.size, len(b.entries), next, pb.MaxBundleEntries, maxBundleBytes)
		}
		es, err := pb.SplitBundle(b.entries, int(n))
		if err != nil {
			t.Fatal(err)
		}
		ss, err := pb.SplitBundle(b.subjects, int(n))
		if err != nil {
			t.Fatal(err)
		}
		for k := range es {
			r := recs[b.first-1000+int64(k)]
			if !bytes.Equal(es[k], r.Body) || string(ss[k]) != r.Subject || cap(es[k]) != len(es[k]) {
				t.Fatalf("entry %d of bundle %d differs", k, b.first)
			}
		}
		next = b.size
	}
	if next != 1150 {
		t.Fatalf("bundles end at %d, want 1150", next)
	}

	if _, err := bundle(0, []pb.LogRecord{{Subject: "pay_a", Body: make([]byte, pb.MaxLogEntryBytes+1)}}); err == nil {
		t.Fatal("bundle took an entry over the limit")
	}
	if _, err := bundle(0, []pb.LogRecord{{Subject: strings.Repeat("s", 1<<16), Body: []byte("{}")}}); err == nil {
		t.Fatal("bundle took a subject over the limit")
	}
	good := pb.AppendBundleItem(pb.AppendBundleItem(nil, []byte("one")), []byte("two"))
	for name, c := range map[string]struct {
		b []byte
		n int64
	}{
		"truncated length": {good[:6], 2},
		"truncated item":   {good[:len(good)-1], 2},
		"fewer items":      {good, 3},
		"more items":       {good, 1},
		"no items":         {nil, 0},
		"too many":         {good, pb.MaxBundleEntries + 1},
	} {
		if _, err := pb.SplitBundle(c.b, int(c.n)); !errors.Is(err, pb.ErrBadBundle) {
			t.Errorf("%s: bundleItems = %v, want pb.ErrBadBundle", name, err)
		}
	}
}

// TestPackRoundTrip: what pack stores reads back as the entries given,
// deflated when that is smaller; a bundle whose bytes begin like a
// deflated one (a first entry of 0x7a bytes) reads back too.
func TestPackRoundTrip(t *testing.T) {
	var recs []pb.LogRecord
	for i := range 40 {
		recs = append(recs, pb.LogRecord{Subject: fmt.Sprintf("pay_%026d", i),
			Body: []byte(fmt.Sprintf(`{"actor":{"id":"mch_x","role":"merchant"},"data":{"amount":%d},"type":"payment.captured","v":1}`, i))})
	}
	recs = append([]pb.LogRecord{{Subject: "pay_mark", Body: []byte(strings.Repeat("z", 0x7a))}}, recs...)
	pk := <-pack(recs)
	if pk.err != nil {
		t.Fatal(pk.err)
	}
	raw, err := bundle(0, recs)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0].entries[0] != 0 || raw[0].entries[1] != 'z' {
		t.Fatalf("the test's first bundle begins %q; want the deflated mark", raw[0].entries[:2])
	}
	var got [][]byte
	for _, b := range pk.bundles {
		es, err := unbundle(b.entries, int(b.size-b.first))
		if err != nil {
			t.Fatal(err)
		}
		ss, err := unbundle(b.subjects, int(b.size-b.first))
		if err != nil {
			t.Fatal(err)
		}
		for k := range es {
			if i := b.first + int64(k); string(ss[k]) != recs[i].Subject {
				t.Fatalf("subject %d = %q; want %q", i, ss[k], recs[i].Subject)
			}
		}
		got = append(got, es...)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d entries read back; want %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i], recs[i].Body) {
			t.Fatalf("entry %d = %q; want %q", i, got[i], recs[i].Body)
		}
	}
	if n, m := len(pk.bundles[0].entries), len(raw[0].entries); n*2 > m {
		t.Fatalf("a bundle of similar entries is stored in %d bytes of %d; want under half", n, m)
	}
}
