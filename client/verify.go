package client

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/tlog"
	"github.com/transparency-dev/formats/witness"
)

// Errors of the log's verification, wrapped by VerifyReceipt,
// VerifyConsistency and Audit where they apply: each says which promise of
// the log broke.
var (
	ErrBadCheckpoint = tlog.ErrBadCheckpoint // a checkpoint that does not parse
	ErrBadSignature  = tlog.ErrBadSignature  // a checkpoint not signed by the log's key
	ErrNotIncluded   = tlog.ErrNotIncluded   // an entry not in the tree its checkpoint commits to
	ErrInconsistent  = tlog.ErrInconsistent  // two checkpoints not of one append-only log
	ErrFork          = tlog.ErrFork          // two checkpoints of one size with different roots
)

// ReceiptEntry is one entry of a verified receipt: one its holder may read
// (Body, and the decoded fields), or one withheld from it (Withheld).
type ReceiptEntry struct {
	Index int64
	Body  []byte // the entry's exact bytes
	// Decoded fields of the entry; of a withheld entry, only Type, as the
	// server named it.
	Type    string          `json:"type"`
	Time    string          `json:"time"`
	Subject string          `json:"subject"`
	Prev    string          `json:"prev"`
	Actor   pb.Actor        `json:"actor"`
	Data    json.RawMessage `json:"data"`
	// Withheld is why the entry is withheld from the receipt's holder
	// (docs/visibility.md), "" for an entry it reads. Leaf is a withheld
	// entry's leaf hash, proven in the tree, when the receipt gives it;
	// otherwise nothing of the entry could be checked.
	Withheld string `json:"withheld,omitempty"`
	Leaf     string `json:"leaf,omitempty"`
	// Unchained is set on an entry whose prev could not be checked: the
	// entry before it is withheld without its leaf hash.
	Unchained bool `json:"unchained,omitempty"`
}

// VerifiedReceipt is what VerifyReceipt established.
type VerifiedReceipt struct {
	PaymentID  string
	Entries    []ReceiptEntry // in log order, withheld ones too
	Checkpoint tlog.Checkpoint
	Note       []byte // the signed checkpoint every proof is against
	// Risk is the receipt's risk opening, checked against the commitment
	// of the payment.created entry; nil when the receipt has none.
	Risk *pb.RiskOpening
}

// ErrReceipt is wrapped by every reason VerifyReceipt refuses a receipt;
// the tlog errors (ErrBadSignature, ErrNotIncluded, …) and
// pb.ErrRiskOpening are wrapped too.
var ErrReceipt = errors.New("receipt does not verify")

// VerifyReceipt checks a receipt offline against the log's verifier key
// (which the verifier must already trust, not take from the receipt): each
// proof's checkpoint is signed by vkey, all proofs are against the same
// checkpoint, each entry is in the tree at its index, every entry is about
// the receipt's payment, and the entries form the payment's chain (each
// names the previous one's leaf hash as prev, the first names none).
//
// Entries withheld from the receipt's holder are checked as far as the
// receipt allows: one with its leaf hash is in the tree at its index, and
// the entry after it must name it as prev, but its own prev and subject
// cannot be checked; one without cannot be checked at all, nor the prev of
// the entry after it (marked Unchained). The risk opening, if any, must
// open the payment.created entry's risk_sha256.
func VerifyReceipt(r *Receipt, vkey string) (*VerifiedReceipt, error) {
	if r.PaymentID == "" || len(r.Proofs) == 0 {
		return nil, receiptErr("it names no payment or holds no proofs (a receipt whose every entry is withheld without its leaf hash proves nothing)")
	}
	withheld, err := withheldEntries(r.Withheld)
	if err != nil {
		return nil, err
	}
	c := &receiptChain{v: &VerifiedReceipt{PaymentID: r.PaymentID}, vkey: vkey, withheld: withheld,
		proven: map[int64]bool{}, last: -1}
	for i, text := range r.Proofs {
		if err := c.add(i, text); err != nil {
			return nil, err
		}
	}
	v := c.v
	for idx, w := range withheld {
		switch {
		case w.LeafHash != "" && !c.proven[idx]:
			return nil, receiptErr("withheld entry %d has a leaf hash but no proof", idx)
		case w.LeafHash == "":
			v.Entries = append(v.Entries, ReceiptEntry{Index: idx, Type: w.Type, Withheld: w.Reason})
		}
	}
	slices.SortFunc(v.Entries, func(a, b ReceiptEntry) int { return cmp.Compare(a.Index, b.Index) })
	if r.Risk != nil {
		if err := verifyRisk(r.Risk, v.Entries); err != nil {
			return nil, receiptErr("%w", err)
		}
		v.Risk = r.Risk
	}
	return v, nil
}

// receiptErr is a reason VerifyReceipt refuses a receipt: it wraps
// ErrReceipt, and whatever format wraps with %w.
func receiptErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrReceipt}, args...)...)
}

// withheldEntries indexes a receipt's withheld entries, refusing an index
// listed twice or negative and a leaf hash that is not hex SHA-256.
func withheldEntries(list []WithheldEntry) (map[int64]WithheldEntry, error) {
	withheld := map[int64]WithheldEntry{}
	for _, w := range list {
		if _, dup := withheld[w.Index]; dup || w.Index < 0 {
			return nil, receiptErr("withheld entry %d is listed twice or has a negative index", w.Index)
		}
		if w.LeafHash != "" {
			if b, err := hex.DecodeString(w.LeafHash); err != nil || len(b) != 32 {
				return nil, receiptErr("withheld entry %d has a leaf hash that is not hex SHA-256: %q", w.Index, w.LeafHash)
			}
		}
		withheld[w.Index] = w
	}
	return withheld, nil
}

// receiptChain checks a receipt's proofs in order: each against the one
// checkpoint they share, and each entry against the one before it.
type receiptChain struct {
	v        *VerifiedReceipt // the entries proven so far, and the checkpoint
	vkey     string
	withheld map[int64]WithheldEntry
	proven   map[int64]bool
	prev     *[32]byte // the previous proof's leaf hash; nil before the first
	last     int64     // the index of the previous proof
}

// add checks proof i and adds its entry.
func (c *receiptChain) add(i int, text string) error {
	p, err := tlog.ParseProof(text)
	if err != nil {
		return receiptErr("proof %d: %w", i, err)
	}
	w, isWithheld := c.withheld[p.Index]
	var leaf [32]byte
	switch {
	case p.Extra != nil && isWithheld:
		return receiptErr("entry %d is both given and listed as withheld", p.Index)
	case p.Extra != nil:
		leaf = pb.LeafHash(p.Extra)
	case !isWithheld || w.LeafHash == "":
		return receiptErr("proof %d carries no entry, and the receipt lists no withheld entry %d with its leaf hash", i, p.Index)
	default:
		hex.Decode(leaf[:], []byte(w.LeafHash)) // checked by withheldEntries
	}
	cp, err := tlog.VerifyProofLeaf(p, leaf, c.vkey)
	if err != nil {
		return receiptErr("proof %d (index %d): %w", i, p.Index, err)
	}
	if i == 0 {
		c.v.Checkpoint, c.v.Note = cp, p.Checkpoint
	} else if cp.Size != c.v.Checkpoint.Size || cp.Hash != c.v.Checkpoint.Hash {
		return receiptErr("proof %d is against another checkpoint (size %d) than the first (size %d)", i, cp.Size, c.v.Checkpoint.Size)
	}
	if p.Index <= c.last {
		return receiptErr("entry %d is out of order", p.Index)
	}
	// An entry withheld without its leaf hash between the previous
	// proof and this one leaves this entry's prev unknown.
	gap := false
	for idx, w := range c.withheld {
		if w.LeafHash == "" && idx > c.last && idx < p.Index {
			gap = true
		}
	}
	c.last = p.Index
	c.proven[p.Index] = true
	if isWithheld {
		c.v.Entries = append(c.v.Entries, ReceiptEntry{Index: p.Index, Type: w.Type, Withheld: w.Reason, Leaf: w.LeafHash})
		c.prev = &leaf
		return nil
	}
	e, err := c.entry(&p, gap)
	if err != nil {
		return err
	}
	c.prev = &leaf
	c.v.Entries = append(c.v.Entries, e)
	return nil
}

// entry decodes the entry p carries and checks that it is canonical, about
// the receipt's payment, and names the previous entry's leaf hash as prev
// (unless gap: an entry withheld without its leaf hash came between).
func (c *receiptChain) entry(p *tlog.InclusionProof, gap bool) (ReceiptEntry, error) {
	e := ReceiptEntry{Index: p.Index, Body: p.Extra}
	if err := json.Unmarshal(p.Extra, &e); err != nil {
		return e, receiptErr("entry %d is not JSON: %v", p.Index, err)
	}
	if canon, err := pb.Canonical(p.Extra); err != nil || string(canon) != string(p.Extra) {
		return e, receiptErr("entry %d is not canonical JSON", p.Index)
	}
	if e.Subject != c.v.PaymentID {
		return e, receiptErr("entry %d is about %q, not %s", p.Index, e.Subject, c.v.PaymentID)
	}
	want := ""
	if c.prev != nil {
		want = hex.EncodeToString(c.prev[:])
	}
	switch {
	case gap:
		e.Unchained = true
	case e.Prev != want:
		return e, receiptErr("entry %d names prev %q, but the previous entry's leaf hash is %q: an entry is missing or was changed", p.Index, e.Prev, want)
	}
	return e, nil
}

// verifyRisk checks a receipt's risk opening against the commitment of its
// payment.created entry.
func verifyRisk(o *pb.RiskOpening, entries []ReceiptEntry) error {
	for _, e := range entries {
		if e.Withheld != "" || e.Type != pb.LogPaymentCreated {
			continue
		}
		var d struct {
			RiskSHA256 string `json:"risk_sha256"`
		}
		if json.Unmarshal(e.Data, &d) != nil || d.RiskSHA256 == "" {
			return fmt.Errorf("%w: entry %d commits to no risk assessment", pb.ErrRiskOpening, e.Index)
		}
		return o.Verify(d.RiskSHA256)
	}
	return fmt.Errorf("%w: the receipt gives no payment.created entry to check it against", pb.ErrRiskOpening)
}

// VerifyWitnesses checks that the receipt's checkpoint (v.Note) carries the
// cosignatures that the quorum of policy requires: a witness policy in the
// Sigsum policy format with C2SP cosignature/v1 witness keys ("witness
// NAME VKEY URL", "group NAME K|any|all MEMBER…", "quorum NAME|none"), the
// format the server's --witness-policy reads. A server that showed you a
// log of its own could then deceive you only with the witnesses' help. A
// policy that does not parse is an error that does not wrap ErrReceipt;
// cosignatures that fall short of the quorum are one that does.
func (v *VerifiedReceipt) VerifyWitnesses(policy []byte) error {
	g, err := witness.ParsePolicy(policy)
	if err != nil {
		return fmt.Errorf("witness policy: %w", err)
	}
	if !g.Satisfied(v.Note) {
		return fmt.Errorf("%w: the checkpoint lacks the cosignatures the witness policy's quorum requires", ErrReceipt)
	}
	return nil
}

// ConsistencyError is the error of two checkpoints that are not of one
// append-only log: Err wraps ErrFork (one size, two roots) or
// ErrInconsistent (the consistency proof fails).
type ConsistencyError struct {
	OldSize, NewSize int64 // the checkpoints' sizes, the smaller first
	Err              error
}

func (e *ConsistencyError) Error() string {
	return fmt.Sprintf("checkpoints of size %d and %d: %v", e.OldSize, e.NewSize, e.Err)
}

func (e *ConsistencyError) Unwrap() error { return e.Err }

// VerifyConsistency checks that a and b, two signed checkpoints (notes, as
// LogCheckpoint and VerifiedReceipt.Note give them) each signed by vkey,
// are of one append-only log: of one size, they must have one root; of two
// sizes, the smaller tree must be a prefix of the larger, by a consistency
// proof that it fetches with c (no API key needed). Keep the checkpoints
// you have seen and check each new one against them, and a server cannot
// show you a log it rewrote, nor you and another party two different logs,
// without this failing for one of you.
//
// c may be nil when the sizes are equal. A checkpoint that does not verify
// returns its tlog error (ErrBadSignature, …); two that are not of one log,
// a *ConsistencyError; a proof that could not be fetched, an error
// wrapping c's.
func VerifyConsistency(ctx context.Context, c *Client, vkey string, a, b []byte) error {
	older, err := tlog.Open(a, vkey)
	if err != nil {
		return err
	}
	newer, err := tlog.Open(b, vkey)
	if err != nil {
		return err
	}
	if older.Size > newer.Size {
		older, newer = newer, older
	}
	var hs []tlog.Hash
	if older.Size != newer.Size {
		if c == nil {
			return fmt.Errorf("client: checkpoints of size %d and %d need a consistency proof, and VerifyConsistency was given no client to fetch it", older.Size, newer.Size)
		}
		p, err := c.ConsistencyProof(ctx, older.Size, newer.Size)
		if err != nil {
			return fmt.Errorf("couldn't fetch a consistency proof: %w", err)
		}
		if hs, err = decodeHashes(p.Hashes); err != nil {
			return err
		}
	}
	return checkConsistency(older, newer, hs)
}

// checkConsistency checks that newer extends older with proof.
func checkConsistency(older, newer tlog.Checkpoint, proof []tlog.Hash) error {
	if err := tlog.VerifyConsistency(older, newer, proof); err != nil {
		return &ConsistencyError{OldSize: older.Size, NewSize: newer.Size, Err: err}
	}
	return nil
}

// decodeHashes decodes a proof's hashes, base64 as the API sends them.
func decodeHashes(b64 []string) ([]tlog.Hash, error) {
	hs := make([]tlog.Hash, len(b64))
	for i, s := range b64 {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != len(tlog.Hash{}) {
			return nil, fmt.Errorf("the server sent a proof hash that is not base64 SHA-256: %q", s)
		}
		hs[i] = tlog.Hash(raw)
	}
	return hs, nil
}
