package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

func idem(caller, key string, created time.Time) pb.IdempotencyRecord {
	return pb.IdempotencyRecord{Caller: caller, Key: key, RequestHash: sha256.Sum256([]byte(caller + "\x00" + key)),
		Status: 201, Body: []byte(`{"caller":"` + caller + `","key":"` + key + `"}`), CreatedAt: created}
}

// lookup returns LookupIdempotency's answer keyed by (caller, key), failing
// on duplicates.
func lookup(t *testing.T, s pb.Store, keys []pb.IdempotencyKey) map[pb.IdempotencyKey]pb.IdempotencyRecord {
	t.Helper()
	recs, err := s.LookupIdempotency(t.Context(), keys)
	if err != nil {
		t.Fatalf("LookupIdempotency(%d keys): %v", len(keys), err)
	}
	out := make(map[pb.IdempotencyKey]pb.IdempotencyRecord, len(recs))
	for _, r := range recs {
		k := pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}
		if _, dup := out[k]; dup {
			t.Errorf("LookupIdempotency returned %+v twice", k)
		}
		out[k] = r
	}
	return out
}

func checkIdem(t *testing.T, got, want pb.IdempotencyRecord) {
	t.Helper()
	what := fmt.Sprintf("idempotency record (%q, %q)", want.Caller, want.Key)
	if got.Caller != want.Caller || got.Key != want.Key {
		t.Errorf("%s: came back as (%q, %q)", what, got.Caller, got.Key)
	}
	if got.RequestHash != want.RequestHash {
		t.Errorf("%s: RequestHash = %x, want %x", what, got.RequestHash, want.RequestHash)
	}
	if got.Status != want.Status {
		t.Errorf("%s: Status = %d, want %d", what, got.Status, want.Status)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("%s: Body = %q, want %q (byte for byte)", what, got.Body, want.Body)
	}
	if !milli(got.CreatedAt).Equal(milli(want.CreatedAt)) {
		t.Errorf("%s: CreatedAt = %v, want %v (to the millisecond)", what, got.CreatedAt, want.CreatedAt)
	}
}

func testIdempotency(t *testing.T, s pb.Store) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	recs := []pb.IdempotencyRecord{
		idem("usr_alice", "k1", t0),
		idem("usr_alice", "k2", t0.Add(time.Millisecond)),
		idem("usr_bob", "k1", t0.Add(2*time.Millisecond)), // same key, another caller
		{Caller: "mch_cafe", Key: "décliné ✓", RequestHash: sha256.Sum256(binary), Status: 402, Body: binary, CreatedAt: t0.Add(3 * time.Millisecond)},
	}
	recs[2].Body = []byte(`{"other":"body"}`)
	recs[2].Status = 409
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Idempotency: recs}})

	asked := []pb.IdempotencyKey{
		{Caller: "usr_alice", Key: "k1"},
		{Caller: "usr_bob", Key: "k1"},
		{Caller: "mch_cafe", Key: "décliné ✓"},
		{Caller: "usr_alice", Key: "k3"}, // missing
		{Caller: "usr_bob", Key: "k2"},   // exists only under usr_alice
		{Caller: "usr_carol", Key: "k1"}, // exists only under others
	}
	got := lookup(t, s, asked)
	want := map[pb.IdempotencyKey]pb.IdempotencyRecord{}
	for _, i := range []int{0, 2, 3} {
		want[pb.IdempotencyKey{Caller: recs[i].Caller, Key: recs[i].Key}] = recs[i]
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("LookupIdempotency returned %+v, which was not stored under that caller or not asked for", k)
		}
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("LookupIdempotency did not return stored and asked-for %+v", k)
			continue
		}
		checkIdem(t, g, w)
	}

	if got := lookup(t, s, nil); len(got) != 0 {
		t.Errorf("LookupIdempotency(no keys) returned %d records, want none", len(got))
	}
	if got := lookup(t, s, []pb.IdempotencyKey{{Caller: "usr_alice", Key: "k2"}}); len(got) != 1 {
		t.Errorf("LookupIdempotency(usr_alice/k2) returned %d records, want 1", len(got))
	} else {
		checkIdem(t, got[pb.IdempotencyKey{Caller: "usr_alice", Key: "k2"}], recs[1])
	}
}

// An outcome may have an empty response body; it must still be stored and
// replayed (as empty).
func testIdempotencyEmptyBody(t *testing.T, s pb.Store) {
	testIdempotencyBody(t, s, []byte{})
}

// A nil body is an empty body: Render may return one.
func testIdempotencyNilBody(t *testing.T, s pb.Store) {
	testIdempotencyBody(t, s, nil)
}

func testIdempotencyBody(t *testing.T, s pb.Store, body []byte) {
	r := idem("usr_alice", "no-body", t0)
	r.Body, r.Status = body, 204
	other := idem("usr_alice", "other", t0)
	if err := s.Commit(t.Context(), &pb.Batch{PaymentPart: pb.PaymentPart{Idempotency: []pb.IdempotencyRecord{r, other}}}); err != nil {
		t.Fatalf("Commit of an idempotency record with Body %#v: %v", body, err)
	}
	got := lookup(t, s, []pb.IdempotencyKey{{Caller: "usr_alice", Key: "no-body"}})
	g, ok := got[pb.IdempotencyKey{Caller: "usr_alice", Key: "no-body"}]
	if !ok {
		t.Fatalf("LookupIdempotency did not return the record with Body %#v", body)
	}
	checkIdem(t, g, r)
}

// The ledger writer asks for all of a batch's keys at once: thousands,
// mostly not stored, and a store may have to split such a query.
func testIdempotencyManyKeys(t *testing.T, s pb.Store) {
	const n = 4200
	var recs []pb.IdempotencyRecord
	var keys []pb.IdempotencyKey
	for i := range n {
		r := idem(fmt.Sprintf("usr_%d", i%7), fmt.Sprintf("key-%05d", i), t0)
		keys = append(keys, pb.IdempotencyKey{Caller: r.Caller, Key: r.Key})
		if i%14 == 0 || i == n-1 {
			recs = append(recs, r)
		}
	}
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Idempotency: recs}})
	got := lookup(t, s, keys)
	if len(got) != len(recs) {
		t.Errorf("LookupIdempotency of %d keys (%d of them stored) returned %d records", len(keys), len(recs), len(got))
	}
	for _, r := range recs {
		g, ok := got[pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}]
		if !ok {
			t.Errorf("LookupIdempotency of %d keys did not return stored %s/%s", len(keys), r.Caller, r.Key)
			continue
		}
		checkIdem(t, g, r)
	}
}

func testDeleteIdempotency(t *testing.T, s pb.Store) {
	ctx := t.Context()
	cutoff := t0
	var old, young []pb.IdempotencyRecord
	for i := range 10 {
		old = append(old, idem(fmt.Sprintf("usr_%d", i%3), fmt.Sprintf("old-%d", i), cutoff.Add(-time.Duration(i+1)*time.Millisecond)))
	}
	young = append(young,
		idem("usr_0", "at-cutoff", cutoff),
		idem("usr_1", "after-cutoff", cutoff.Add(time.Millisecond)),
		idem("usr_2", "much-later", cutoff.Add(pb.IdempotencyRetention)))
	commit(t, s, &pb.Batch{PaymentPart: pb.PaymentPart{Idempotency: append(slices.Clone(old), young...)}})

	var keys []pb.IdempotencyKey
	for _, r := range append(slices.Clone(old), young...) {
		keys = append(keys, pb.IdempotencyKey{Caller: r.Caller, Key: r.Key})
	}
	count := func() (nOld int, youngLeft map[pb.IdempotencyKey]bool) {
		got := lookup(t, s, keys)
		youngLeft = map[pb.IdempotencyKey]bool{}
		for _, r := range old {
			if _, ok := got[pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}]; ok {
				nOld++
			}
		}
		for _, r := range young {
			k := pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}
			if _, ok := got[k]; ok {
				youngLeft[k] = true
			}
		}
		return nOld, youngLeft
	}
	steps := []struct{ limit, want int }{{4, 4}, {4, 4}, {4, 2}, {4, 0}}
	left := len(old)
	for _, st := range steps {
		n, err := s.DeleteIdempotency(ctx, cutoff, st.limit)
		if err != nil {
			t.Fatalf("DeleteIdempotency(cutoff, %d): %v", st.limit, err)
		}
		if n != st.want {
			t.Errorf("DeleteIdempotency(cutoff, %d) with %d older records left = %d, want %d", st.limit, left, n, st.want)
		}
		left -= st.want
		nOld, youngLeft := count()
		if nOld != left {
			t.Errorf("after DeleteIdempotency(cutoff, %d): %d records older than the cutoff remain, want %d", st.limit, nOld, left)
		}
		for _, r := range young {
			if k := (pb.IdempotencyKey{Caller: r.Caller, Key: r.Key}); !youngLeft[k] {
				t.Errorf("DeleteIdempotency(cutoff, %d) removed %s/%s created at %v, not before the cutoff %v", st.limit, r.Caller, r.Key, r.CreatedAt, cutoff)
			}
		}
	}
}
