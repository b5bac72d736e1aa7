package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

// TestPrepareCommit: a batch prepared before its commit is written as one
// that was not (its idempotency bodies deflated, its log entries bundled),
// the prepared encoding is used once, and batches prepared but never
// committed are dropped past maxEncodings instead of piling up.
func TestPrepareCommit(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, t.TempDir()+"/paybound.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	body := bytes.Repeat([]byte(`{"object":"payment","amount":100},`), 20) // deflated when stored
	batch := func(key string) *pb.Batch {
		return &pb.Batch{PaymentPart: pb.PaymentPart{Idempotency: []pb.IdempotencyRecord{
			{Caller: "usr_1", Key: key, Status: 201, Body: body, CreatedAt: t0}}}}
	}
	for i := range maxEncodings + 2 {
		s.PrepareCommit(batch(fmt.Sprint("never-", i)))
	}
	if len(s.encodings) != maxEncodings {
		t.Fatalf("%d encodings kept for batches never committed, want %d", len(s.encodings), maxEncodings)
	}
	b := batch("k1")
	s.PrepareCommit(b)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, e := range s.encodings {
		if e.b == b {
			t.Fatal("the committed batch's encoding was kept")
		}
	}
	if err := s.Commit(ctx, batch("k2")); err != nil { // not prepared
		t.Fatal(err)
	}
	recs, err := s.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: "usr_1", Key: "k1"}, {Caller: "usr_1", Key: "k2"}})
	if err != nil || len(recs) != 2 {
		t.Fatalf("LookupIdempotency = %d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Body, body) || r.Status != 201 {
			t.Fatalf("record %s = %d %q", r.Key, r.Status, r.Body)
		}
	}
	var stored int
	if err := s.db.QueryRowContext(ctx, `SELECT length(body) FROM idempotency WHERE key = 'k1'`).Scan(&stored); err != nil || stored >= len(body) {
		t.Fatalf("k1's body is stored in %d bytes (%v), want deflated below %d", stored, err, len(body))
	}
}
