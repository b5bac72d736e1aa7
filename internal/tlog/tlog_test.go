package tlog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

const origin = "paybound.test/log"

func build(t *testing.T, n int) (*Memory, [][]byte) {
	t.Helper()
	var m Memory
	var entries [][]byte
	for i := range n {
		e := fmt.Appendf(nil, `{"index":%d,"type":"payment.created"}`, i)
		if idx, err := m.Append(e); err != nil || idx != int64(i) {
			t.Fatalf("append %d: %d %v", i, idx, err)
		}
		entries = append(entries, e)
	}
	return &m, entries
}

func signed(t *testing.T, s *Signer, vkey string, m *Memory, size int64) Checkpoint {
	t.Helper()
	root, err := m.Root(size)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.Sign(size, root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(msg, vkey)
	if err != nil {
		t.Fatalf("open %s: %v", msg, err)
	}
	return c
}

// TestLeafHashRFC6962: the leaf hash of the empty entry is SHA-256(0x00).
func TestLeafHashRFC6962(t *testing.T) {
	h := LeafHash(nil)
	if got := hex.EncodeToString(h[:]); got != "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d" {
		t.Fatalf("leaf hash of empty = %s", got)
	}
}

// TestInclusionAndConsistency: every entry of trees of every size up to 33
// is proved included in a signed checkpoint, and every smaller checkpoint
// is proved a prefix of every larger one; a tampered entry, a wrong index,
// a truncated or altered proof are each refused.
func TestInclusionAndConsistency(t *testing.T) {
	skey, vkey, err := NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	m, entries := build(t, 33)
	cps := []Checkpoint{{Origin: origin}}
	for size := int64(1); size <= 33; size++ {
		c := signed(t, s, vkey, m, size)
		cps = append(cps, c)
		for i := range size {
			p, err := m.ProveInclusion(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(entries[i], i, p, c); err != nil {
				t.Fatalf("entry %d of %d: %v", i, size, err)
			}
			bad := append([]byte(nil), entries[i]...)
			bad[len(bad)/2] ^= 1
			if err := VerifyInclusion(bad, i, p, c); !errors.Is(err, ErrNotIncluded) {
				t.Fatalf("tampered entry %d of %d: %v", i, size, err)
			}
			if len(p) > 0 {
				if err := VerifyInclusion(entries[i], i, p[:len(p)-1], c); !errors.Is(err, ErrNotIncluded) {
					t.Fatalf("truncated proof %d of %d: %v", i, size, err)
				}
				q := append([]Hash(nil), p...)
				q[0][0] ^= 1
				if err := VerifyInclusion(entries[i], i, q, c); !errors.Is(err, ErrNotIncluded) {
					t.Fatalf("altered proof %d of %d: %v", i, size, err)
				}
			}
			if err := VerifyInclusion(entries[i], size, p, c); !errors.Is(err, ErrNotIncluded) {
				t.Fatalf("index past the tree: %v", err)
			}
		}
	}
	for old := int64(0); old <= 33; old++ {
		for nw := old; nw <= 33; nw++ {
			var p []Hash
			if old > 0 && old < nw {
				if p, err = m.ProveConsistency(old, nw); err != nil {
					t.Fatal(err)
				}
			}
			if err := VerifyConsistency(cps[old], cps[nw], p); err != nil {
				t.Fatalf("consistency %d → %d: %v", old, nw, err)
			}
			if len(p) > 1 {
				if err := VerifyConsistency(cps[old], cps[nw], p[:len(p)-1]); !errors.Is(err, ErrInconsistent) {
					t.Fatalf("truncated consistency proof %d → %d: %v", old, nw, err)
				}
			}
		}
	}
}

// TestForkAndForeignLog: two checkpoints of one size with different roots
// are a fork; a checkpoint of another log is not consistent with ours.
func TestForkAndForeignLog(t *testing.T) {
	skey, vkey, _ := NewKey(origin)
	s, _ := NewSigner(skey)
	m, _ := build(t, 8)
	a := signed(t, s, vkey, m, 8)
	var forked Memory
	for i := range 8 {
		forked.Append(fmt.Appendf(nil, "other %d", i))
	}
	b := signed(t, s, vkey, &forked, 8)
	if err := VerifyConsistency(a, b, nil); !errors.Is(err, ErrFork) {
		t.Fatalf("fork: %v", err)
	}
	// A longer tree that does not extend the first is inconsistent.
	forked.Append([]byte("more"))
	c := signed(t, s, vkey, &forked, 9)
	p, _ := forked.ProveConsistency(8, 9)
	if err := VerifyConsistency(a, c, p); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("diverged log: %v", err)
	}
	other := a
	other.Origin = "elsewhere.test/log"
	if err := VerifyConsistency(a, other, nil); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("another origin: %v", err)
	}
}

// TestOpenRefuses: a checkpoint under another key, with any byte of its
// body changed, or whose origin is not the key's name, is refused.
func TestOpenRefuses(t *testing.T) {
	skey, vkey, _ := NewKey(origin)
	s, _ := NewSigner(skey)
	m, _ := build(t, 3)
	root, _ := m.Root(3)
	msg, _ := s.Sign(3, root)
	_, otherV, _ := NewKey(origin)
	if _, err := Open(msg, otherV); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	body := strings.Index(string(msg), "\n\n")
	for i := range body {
		bad := append([]byte(nil), msg...)
		bad[i] ^= 0x20
		if _, err := Open(bad, vkey); err == nil {
			t.Fatalf("byte %d changed, still opened", i)
		}
	}
	// A key named differently from the origin it signs.
	k2, v2, _ := NewKey("paybound.test/other")
	s2, _ := NewSigner(k2)
	forged, err := note.Sign(&note.Note{Text: Checkpoint{Origin: origin, Size: 3, Hash: root}.String()}, s2.s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(forged, v2); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "not the key's name") {
		t.Fatalf("origin not the key's name: %v", err)
	}
	if _, err := Open(msg, "not a key"); err == nil {
		t.Fatal("a malformed verifier key was accepted")
	}
}

func TestParseCheckpoint(t *testing.T) {
	good := "paybound.test/log\n3\n" + strings.Repeat("A", 43) + "=\nextension line\n"
	c, err := ParseCheckpoint(good)
	if err != nil || c.Size != 3 || c.Origin != origin || len(c.Extensions) != 1 || c.String() != good {
		t.Fatalf("parse: %+v %v", c, err)
	}
	for _, bad := range []string{
		"", "paybound.test/log\n3\n", "paybound.test/log\n3\n" + strings.Repeat("A", 43) + "=",
		"paybound.test/log\n-1\n" + strings.Repeat("A", 43) + "=\n",
		"paybound.test/log\n03\n" + strings.Repeat("A", 43) + "=\n",
		"paybound.test/log\n3\nAAAA\n",
		"pay bound\n3\n" + strings.Repeat("A", 43) + "=\n",
		"\n3\n" + strings.Repeat("A", 43) + "=\n",
		"paybound.test/log\n3\n" + strings.Repeat("A", 43) + "=\n\n",
	} {
		if _, err := ParseCheckpoint(bad); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, _, err := NewKey("has space"); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("origin with a space: %v", err)
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add("paybound.test/log\n3\n" + strings.Repeat("A", 43) + "=\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCheckpoint(s)
		if err == nil && c.String() != s {
			t.Fatalf("round trip: %q → %q", s, c.String())
		}
	})
}

// BenchmarkProveInclusion is the latency of one inclusion proof in a tree
// of a million entries.
func BenchmarkProveInclusion(b *testing.B) {
	var m Memory
	for i := range 1 << 20 {
		m.Append(fmt.Appendf(nil, "entry %d", i))
	}
	size := m.Size()
	var i int64
	for b.Loop() {
		if _, err := m.ProveInclusion(i%size, size); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}

// TestAppendMatchesMemory appends in batches of every shape and checks the
// stored hashes and roots against the one-at-a-time tree, and the proofs
// made from them against the verifiers.
func TestAppendMatchesMemory(t *testing.T) {
	var mem Memory
	var stored []Hash
	read := HashReaderFunc(func(ids []int64) ([]Hash, error) {
		out := make([]Hash, len(ids))
		for i, id := range ids {
			if id < 0 || id >= int64(len(stored)) {
				return nil, fmt.Errorf("no stored hash %d", id)
			}
			out[i] = stored[id]
		}
		return out, nil
	})
	if root, err := TreeHash(0, read); err != nil || root != EmptyRoot {
		t.Fatalf("empty root = %x, %v", root, err)
	}
	size := int64(0)
	for _, n := range []int{1, 1, 2, 3, 7, 16, 1, 31, 64, 100} {
		var leaves []Hash
		for range n {
			e := []byte(fmt.Sprintf(`{"n":%d}`, mem.Size()))
			if _, err := mem.Append(e); err != nil {
				t.Fatal(err)
			}
			leaves = append(leaves, LeafHash(e))
		}
		first, hs, root, err := Append(size, leaves, read)
		if err != nil {
			t.Fatal(err)
		}
		if first != int64(len(stored)) {
			t.Fatalf("first = %d, want %d", first, len(stored))
		}
		stored = append(stored, hs...)
		size += int64(n)
		want, _ := mem.Root(size)
		if root != want {
			t.Fatalf("size %d: root %x, want %x", size, root, want)
		}
		if got, _ := TreeHash(size, read); got != want {
			t.Fatalf("size %d: TreeHash %x, want %x", size, got, want)
		}
	}
	c := Checkpoint{Origin: "example.com/log", Size: size, Hash: func() Hash { h, _ := TreeHash(size, read); return h }()}
	for _, i := range []int64{0, 1, size / 2, size - 1} {
		p, err := ProveInclusion(i, size, read)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion([]byte(fmt.Sprintf(`{"n":%d}`, i)), i, p, c); err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
	}
	old := Checkpoint{Origin: c.Origin, Size: 9}
	old.Hash, _ = TreeHash(9, read)
	p, err := ProveConsistency(9, size, read)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(old, c, p); err != nil {
		t.Fatal(err)
	}
	if _, err := ProveInclusion(size, size, read); err == nil {
		t.Fatal("proved an index past the tree")
	}
	if _, err := ProveConsistency(size, 9, read); err == nil {
		t.Fatal("proved a shrinking tree consistent")
	}
}

func TestSignerVerifierKeyAndProofFormat(t *testing.T) {
	skey, vkey, err := NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != vkey || s.Origin() != origin {
		t.Fatalf("VerifierKey = %q, Origin = %q; want %q, %q", s.VerifierKey(), s.Origin(), vkey, origin)
	}
	var m Memory
	for i := range 5 {
		m.Append([]byte{byte(i)})
	}
	root, _ := m.Root(5)
	note, err := s.Sign(5, root)
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := m.ProveInclusion(3, 5)
	text := FormatProof(InclusionProof{Extra: []byte{3}, Index: 3, Hashes: hs, Checkpoint: note})
	p, err := ParseProof(text)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyProof(p, p.Extra, vkey); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyProof(p, []byte{4}, vkey); !errors.Is(err, ErrNotIncluded) {
		t.Fatalf("another entry: %v, want ErrNotIncluded", err)
	}
	_, other, _ := NewKey(origin)
	if _, err := VerifyProof(p, p.Extra, other); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another key: %v, want ErrBadSignature", err)
	}
	short := p
	short.Hashes = short.Hashes[:len(short.Hashes)-1]
	if _, err := VerifyProof(short, p.Extra, vkey); !errors.Is(err, ErrNotIncluded) {
		t.Fatalf("truncated proof: %v, want ErrNotIncluded", err)
	}
	for _, bad := range []string{
		"",
		"c2sp.org/tlog-proof@v2\nindex 3\n\n" + string(note),
		strings.Replace(text, "index 3", "index 03", 1),
		strings.Replace(text, "index 3", "index -3", 1),
		strings.Replace(text, "extra Aw==", "extra !!", 1),
		strings.Replace(text, "\n\n", "\nnot-a-hash\n\n", 1),
		strings.Replace(text, "\n\n", "\n", 1),
	} {
		if _, err := ParseProof(bad); !errors.Is(err, ErrBadProof) {
			t.Errorf("ParseProof(%q) = %v, want ErrBadProof", bad, err)
		}
	}
}

func FuzzParseProof(f *testing.F) {
	f.Add("c2sp.org/tlog-proof@v1\nextra AA==\nindex 0\n\nexample.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProof(s)
		if err != nil {
			return
		}
		q, err := ParseProof(FormatProof(p))
		if err != nil || q.Index != p.Index || len(q.Hashes) != len(p.Hashes) || string(q.Extra) != string(p.Extra) {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

// TestFrontierSuffices: appending to a tree reads only its frontier, and
// the frontier after is made of the frontier before and the new hashes.
func TestFrontierSuffices(t *testing.T) {
	var m Memory
	for size := int64(0); size < 300; size++ {
		front := map[int64]bool{}
		for _, id := range Frontier(size) {
			front[id] = true
		}
		only := HashReaderFunc(func(ids []int64) ([]Hash, error) {
			for _, id := range ids {
				if !front[id] {
					return nil, fmt.Errorf("size %d: read stored hash %d, not in the frontier", size, id)
				}
			}
			return m.ReadHashes(ids)
		})
		for _, n := range []int{1, 3} {
			if _, _, _, err := Append(size, make([]Hash, n), only); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := TreeHash(size, only); err != nil {
			t.Fatal(err)
		}
		m.Append([]byte(fmt.Sprint(size)))
	}
}
