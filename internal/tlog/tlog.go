// Package tlog is the verifiable part of Paybound's transparency log: C2SP
// tlog-checkpoint signed notes (Ed25519, golang.org/x/mod/sumdb/note) over
// an RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog), and the checks a
// party runs offline on what the server hands out: an entry's inclusion in
// a checkpoint, one checkpoint's consistency with an earlier one, and fork
// detection. It holds no state and does no I/O; where the tree's hashes are
// kept is the store's business (a tlog.HashReader).
package tlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a node of the tree: SHA-256, RFC 6962.
type Hash = tlog.Hash

// Errors a verifier reports; each says which promise of the log broke.
var (
	ErrBadCheckpoint = errors.New("tlog: malformed checkpoint")
	ErrBadSignature  = errors.New("tlog: checkpoint not signed by the log key")
	ErrNotIncluded   = errors.New("tlog: entry not in the tree the checkpoint commits to")
	ErrInconsistent  = errors.New("tlog: checkpoints are not of one append-only log")
	ErrFork          = errors.New("tlog: two checkpoints of one size with different roots: the log forked")
)

// maxOrigin bounds an origin line.
const maxOrigin = 256

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, the
// tree size and the root hash. Extension lines are kept as they came.
type Checkpoint struct {
	Origin     string
	Size       int64
	Hash       Hash
	Extensions []string
}

// String is the checkpoint body, each line ending in a newline.
func (c Checkpoint) String() string {
	var b strings.Builder
	b.WriteString(c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Hash[:]) + "\n")
	for _, e := range c.Extensions {
		b.WriteString(e + "\n")
	}
	return b.String()
}

// ParseCheckpoint parses a checkpoint body (the text of a note).
func ParseCheckpoint(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: the body must end in a newline", ErrBadCheckpoint)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root hash lines", ErrBadCheckpoint)
	}
	c := Checkpoint{Origin: lines[0]}
	if err := checkOrigin(c.Origin); err != nil {
		return Checkpoint{}, err
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return Checkpoint{}, fmt.Errorf("%w: size %q is not a decimal count", ErrBadCheckpoint, lines[1])
	}
	c.Size = size
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != len(c.Hash) {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q is not 32 bytes of base64", ErrBadCheckpoint, lines[2])
	}
	copy(c.Hash[:], h)
	for _, e := range lines[3:] {
		if e == "" {
			return Checkpoint{}, fmt.Errorf("%w: empty extension line", ErrBadCheckpoint)
		}
		c.Extensions = append(c.Extensions, e)
	}
	return c, nil
}

func checkOrigin(o string) error {
	if o == "" || len(o) > maxOrigin || strings.ContainsAny(o, " \t+\n") {
		return fmt.Errorf("%w: origin %q must be 1 to %d characters with no spaces or '+'", ErrBadCheckpoint, o, maxOrigin)
	}
	return nil
}

// NewKey makes a log key named origin: skey stays with the server; vkey is
// the note verifier key anyone verifies checkpoints with.
func NewKey(origin string) (skey, vkey string, err error) {
	if err := checkOrigin(origin); err != nil {
		return "", "", err
	}
	return note.GenerateKey(rand.Reader, origin)
}

// Signer signs checkpoints with the log key.
type Signer struct {
	s    note.Signer
	vkey string
}

// NewSigner reads a key from NewKey.
func NewSigner(skey string) (*Signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("tlog: log key: %w", err)
	}
	// The key is PRIVATE+KEY+<name>+<hash>+<base64(0x01 || Ed25519 seed)>.
	parts := strings.SplitN(skey, "+", 5) // the key's base64 may hold '+'
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("tlog: log key: not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("tlog: log key: %w", err)
	}
	return &Signer{s: s, vkey: vkey}, nil
}

// Origin is the log's origin, the key's name.
func (s *Signer) Origin() string { return s.s.Name() }

// VerifierKey is the note verifier key of the log key.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns the signed note of the checkpoint of a tree of size with
// root hash; the origin is the key's name.
func (s *Signer) Sign(size int64, root Hash) ([]byte, error) {
	return note.Sign(&note.Note{Text: Checkpoint{Origin: s.s.Name(), Size: size, Hash: root}.String()}, s.s)
}

// Open verifies a signed checkpoint against the log's verifier key and
// returns its body. The origin must be the key's name.
func Open(msg []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: verifier key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key's name %q", ErrBadSignature, c.Origin, v.Name())
	}
	return c, nil
}

// LeafHash is the RFC 6962 hash of an entry's exact bytes.
func LeafHash(entry []byte) Hash { return tlog.RecordHash(entry) }

// VerifyInclusion checks that entry is leaf index of the tree c commits to,
// with proof from the log.
func VerifyInclusion(entry []byte, index int64, proof []Hash, c Checkpoint) error {
	return VerifyLeafInclusion(LeafHash(entry), index, proof, c)
}

// VerifyLeafInclusion checks that leaf, an entry's leaf hash, is leaf
// index of the tree c commits to, with proof from the log: what a party
// that is given only the hash of an entry (one withheld from it) can check.
func VerifyLeafInclusion(leaf Hash, index int64, proof []Hash, c Checkpoint) error {
	if index < 0 || index >= c.Size {
		return fmt.Errorf("%w: index %d is outside a tree of size %d", ErrNotIncluded, index, c.Size)
	}
	if err := tlog.CheckRecord(tlog.RecordProof(proof), c.Size, c.Hash, index, leaf); err != nil {
		return fmt.Errorf("%w: %w", ErrNotIncluded, err)
	}
	return nil
}

// VerifyConsistency checks that newer extends older: the tree of older is a
// prefix of the tree of newer. Equal sizes must have equal roots, or the
// log forked.
func VerifyConsistency(older, newer Checkpoint, proof []Hash) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("%w: origins %q and %q", ErrInconsistent, older.Origin, newer.Origin)
	}
	if older.Size > newer.Size {
		older, newer = newer, older
	}
	if older.Size == newer.Size {
		if older.Hash != newer.Hash {
			return ErrFork
		}
		return nil
	}
	if older.Size == 0 {
		return nil // the empty tree is a prefix of every tree
	}
	if err := tlog.CheckTree(tlog.TreeProof(proof), newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fmt.Errorf("%w: %w", ErrInconsistent, err)
	}
	return nil
}

// Memory is a tree kept in memory: the stored hashes of tlog, in order. It
// serves tests and tools that rebuild a tree from its entries; the server
// keeps the same hashes in its store.
type Memory struct {
	n      int64
	hashes []Hash
}

// Append adds an entry and returns its index.
func (m *Memory) Append(entry []byte) (int64, error) {
	n := m.Size()
	hs, err := tlog.StoredHashes(n, entry, m)
	if err != nil {
		return 0, err
	}
	m.hashes = append(m.hashes, hs...)
	m.n++
	return n, nil
}

// Size is the number of entries.
func (m *Memory) Size() int64 { return m.n }

// ReadHashes implements tlog.HashReader.
func (m *Memory) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("tlog: no stored hash %d", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// Root is the root hash of the first size entries.
func (m *Memory) Root(size int64) (Hash, error) { return tlog.TreeHash(size, m) }

// ProveInclusion proves entry index in the tree of size.
func (m *Memory) ProveInclusion(index, size int64) ([]Hash, error) {
	return tlog.ProveRecord(size, index, m)
}

// ProveConsistency proves the tree of size older is a prefix of newer's.
func (m *Memory) ProveConsistency(older, newer int64) ([]Hash, error) {
	return tlog.ProveTree(newer, older, m)
}

// HashReader reads a tree's stored hashes by their index in tlog's storage
// order.
type HashReader = tlog.HashReader

// HashReaderFunc adapts a function to a HashReader.
type HashReaderFunc = tlog.HashReaderFunc

// Append computes what appending leaves (leaf hashes, in order) to a tree
// of size entries stores: the new stored hashes, which are contiguous from
// index first, and the new tree's root. r serves the hashes already stored;
// Append reads at most a few per leaf, all on the tree's right edge.
func Append(size int64, leaves []Hash, r HashReader) (first int64, hashes []Hash, root Hash, err error) {
	first = tlog.StoredHashIndex(0, size)
	hr := tlog.HashReaderFunc(func(ids []int64) ([]Hash, error) {
		out := make([]Hash, len(ids))
		var old []int64
		for _, id := range ids {
			if id < first {
				old = append(old, id)
			}
		}
		var got []Hash
		if len(old) > 0 {
			if got, err = r.ReadHashes(old); err != nil {
				return nil, err
			}
			if len(got) != len(old) {
				return nil, fmt.Errorf("tlog: asked for %d stored hashes, got %d", len(old), len(got))
			}
		}
		for i, id := range ids {
			if id >= first {
				if id-first >= int64(len(hashes)) {
					return nil, fmt.Errorf("tlog: stored hash %d is not computed yet", id)
				}
				out[i] = hashes[id-first]
			} else {
				out[i], got = got[0], got[1:]
			}
		}
		return out, nil
	})
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(size+int64(i), leaf, hr)
		if err != nil {
			return 0, nil, Hash{}, err
		}
		hashes = append(hashes, hs...)
	}
	if root, err = TreeHash(size+int64(len(leaves)), hr); err != nil {
		return 0, nil, Hash{}, err
	}
	return first, hashes, root, nil
}

// ProveInclusion proves leaf index in the tree of size, from stored hashes.
func ProveInclusion(index, size int64, r HashReader) ([]Hash, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("tlog: index %d is outside a tree of size %d", index, size)
	}
	return tlog.ProveRecord(size, index, r)
}

// ProveConsistency proves that the tree of size older is a prefix of the
// tree of size newer, from stored hashes.
func ProveConsistency(older, newer int64, r HashReader) ([]Hash, error) {
	if older < 0 || older > newer {
		return nil, fmt.Errorf("tlog: no consistency proof from size %d to %d", older, newer)
	}
	if older == 0 || older == newer {
		return nil, nil
	}
	return tlog.ProveTree(newer, older, r)
}

// SplitStoredHashIndex returns the level and index within it of the
// tree's node stored at id: level 0 holds the leaf hashes, which a store
// may keep implicitly, as the entries they hash.
func SplitStoredHashIndex(id int64) (level int, n int64) { return tlog.SplitStoredHashIndex(id) }

// Frontier returns the stored hashes that appending to a tree of size
// entries reads: the roots of its complete subtrees, largest first (they
// are also what TreeHash(size) reads). A writer that keeps them need read
// nothing else to append.
func Frontier(size int64) []int64 {
	var ids []int64
	start := int64(0)
	for l := 62; l >= 0; l-- {
		if size&(1<<l) != 0 {
			ids = append(ids, tlog.StoredHashIndex(l, start>>l))
			start += 1 << l
		}
	}
	return ids
}

// EmptyRoot is the root of the empty tree, SHA-256 of nothing (RFC 6962).
var EmptyRoot = Hash(sha256.Sum256(nil))

// TreeHash is the root of the tree of size entries, from stored hashes.
func TreeHash(size int64, r HashReader) (Hash, error) {
	if size == 0 {
		return EmptyRoot, nil
	}
	return tlog.TreeHash(size, r)
}

// ProofHeader is the first line of a C2SP tlog-proof.
const ProofHeader = "c2sp.org/tlog-proof@v1"

// InclusionProof is a C2SP tlog-proof: an entry's index, its inclusion
// proof, and the signed checkpoint the proof is against, with optional
// application data (Paybound puts the entry itself there).
type InclusionProof struct {
	Extra      []byte
	Index      int64
	Hashes     []Hash
	Checkpoint []byte // the signed note
}

// maxProofHashes bounds a parsed proof: a tree of 2^63 entries needs 63.
const maxProofHashes = 63

// FormatProof encodes p in the tlog-proof text format.
func FormatProof(p InclusionProof) string {
	var b strings.Builder
	b.WriteString(ProofHeader + "\n")
	if p.Extra != nil {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Extra) + "\n")
	}
	b.WriteString("index " + strconv.FormatInt(p.Index, 10) + "\n")
	for _, h := range p.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return b.String()
}

// ParseProof decodes the tlog-proof text format. It checks the format
// only; VerifyProof checks what the proof claims.
func ParseProof(text string) (InclusionProof, error) {
	bad := func(format string, args ...any) (InclusionProof, error) {
		return InclusionProof{}, fmt.Errorf("%w: "+format, append([]any{ErrBadProof}, args...)...)
	}
	head, note, ok := strings.Cut(text, "\n\n")
	if !ok {
		return bad("no blank line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if lines[0] != ProofHeader {
		return bad("the first line must be %q", ProofHeader)
	}
	lines = lines[1:]
	var p InclusionProof
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		var err error
		if p.Extra, err = base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(lines[0], "extra ")); err != nil {
			return bad("extra is not base64: %v", err)
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return bad("an index line must follow")
	}
	n := strings.TrimPrefix(lines[0], "index ")
	idx, err := strconv.ParseInt(n, 10, 64)
	if err != nil || idx < 0 || (len(n) > 1 && n[0] == '0') {
		return bad("index %q is not a decimal number", n)
	}
	p.Index = idx
	lines = lines[1:]
	if len(lines) > maxProofHashes {
		return bad("%d hashes; a proof has at most %d", len(lines), maxProofHashes)
	}
	for _, l := range lines {
		raw, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(raw) != len(Hash{}) {
			return bad("%q is not a base64 SHA-256 hash", l)
		}
		p.Hashes = append(p.Hashes, Hash(raw))
	}
	p.Checkpoint = []byte(note)
	return p, nil
}

// ErrBadProof reports a malformed tlog-proof.
var ErrBadProof = errors.New("tlog: malformed proof")

// VerifyProof checks that p's checkpoint is signed by vkey and that entry
// is at p.Index of the tree it commits to, and returns the checkpoint.
func VerifyProof(p InclusionProof, entry []byte, vkey string) (Checkpoint, error) {
	return VerifyProofLeaf(p, LeafHash(entry), vkey)
}

// VerifyProofLeaf is VerifyProof for an entry known only by its leaf hash.
func VerifyProofLeaf(p InclusionProof, leaf Hash, vkey string) (Checkpoint, error) {
	c, err := Open(p.Checkpoint, vkey)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := VerifyLeafInclusion(leaf, p.Index, p.Hashes, c); err != nil {
		return Checkpoint{}, err
	}
	return c, nil
}

// ReadTile returns the hash tile (C2SP tlog-tiles, height 8) at level and
// index n, of width hashes, from stored hashes.
func ReadTile(level int, n int64, width int, r HashReader) ([]byte, error) {
	return tlog.ReadTileData(tlog.Tile{H: 8, L: level, N: n, W: width}, r)
}

// TilePath is the C2SP tlog-tiles path of a tile, after "tile/": level -1
// names an entry bundle. N is written in groups of three digits, all but
// the last prefixed with x; a partial tile (width < 256) ends in .p/<width>.
func TilePath(level int, n int64, width int) string {
	l := strconv.Itoa(level)
	if level == -1 {
		l = "entries"
	}
	groups := []string{fmt.Sprintf("%03d", n%1000)}
	for n /= 1000; n > 0; n /= 1000 {
		groups = append([]string{fmt.Sprintf("x%03d", n%1000)}, groups...)
	}
	p := l + "/" + strings.Join(groups, "/")
	if width < 256 {
		p += ".p/" + strconv.Itoa(width)
	}
	return p
}
