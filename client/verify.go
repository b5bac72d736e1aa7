package client

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/tlog"
)

// ReceiptEntry is one verified entry of a receipt.
type ReceiptEntry struct {
	Index int64
	Body  []byte // the entry's exact bytes
	// Decoded fields of the entry.
	Type    string          `json:"type"`
	Time    string          `json:"time"`
	Subject string          `json:"subject"`
	Prev    string          `json:"prev"`
	Actor   pb.Actor        `json:"actor"`
	Data    json.RawMessage `json:"data"`
}

// VerifiedReceipt is what VerifyReceipt established.
type VerifiedReceipt struct {
	PaymentID  string
	Entries    []ReceiptEntry
	Checkpoint tlog.Checkpoint
	Note       []byte // the signed checkpoint every proof is against
}

// ErrReceipt is wrapped by every reason VerifyReceipt refuses a receipt;
// the tlog errors (ErrBadSignature, ErrNotIncluded, …) are wrapped too.
var ErrReceipt = errors.New("receipt does not verify")

// VerifyReceipt checks a receipt offline against the log's verifier key
// (which the verifier must already trust, not take from the receipt): each
// proof's checkpoint is signed by vkey, all proofs are against the same
// checkpoint, each entry is in the tree at its index, every entry is about
// the receipt's payment, and the entries form the payment's chain (each
// names the previous one's leaf hash as prev, the first names none).
func VerifyReceipt(r *Receipt, vkey string) (*VerifiedReceipt, error) {
	fail := func(format string, args ...any) (*VerifiedReceipt, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrReceipt}, args...)...)
	}
	if r.PaymentID == "" || len(r.Proofs) == 0 {
		return fail("it names no payment or holds no proofs")
	}
	v := &VerifiedReceipt{PaymentID: r.PaymentID}
	var prev *[32]byte
	for i, text := range r.Proofs {
		p, err := tlog.ParseProof(text)
		if err != nil {
			return fail("proof %d: %w", i, err)
		}
		c, err := tlog.VerifyProof(p, p.Extra, vkey)
		if err != nil {
			return fail("proof %d (index %d): %w", i, p.Index, err)
		}
		if i == 0 {
			v.Checkpoint, v.Note = c, p.Checkpoint
		} else if c.Size != v.Checkpoint.Size || c.Hash != v.Checkpoint.Hash {
			return fail("proof %d is against another checkpoint (size %d) than the first (size %d)", i, c.Size, v.Checkpoint.Size)
		}
		e := ReceiptEntry{Index: p.Index, Body: p.Extra}
		if err := json.Unmarshal(p.Extra, &e); err != nil {
			return fail("entry %d is not JSON: %v", p.Index, err)
		}
		if canon, err := pb.Canonical(p.Extra); err != nil || string(canon) != string(p.Extra) {
			return fail("entry %d is not canonical JSON", p.Index)
		}
		if e.Subject != r.PaymentID {
			return fail("entry %d is about %q, not %s", p.Index, e.Subject, r.PaymentID)
		}
		if len(v.Entries) > 0 && p.Index <= v.Entries[len(v.Entries)-1].Index {
			return fail("entry %d is out of order", p.Index)
		}
		want := ""
		if prev != nil {
			want = hex.EncodeToString(prev[:])
		}
		if e.Prev != want {
			return fail("entry %d names prev %q, but the previous entry's leaf hash is %q: an entry is missing or was changed", p.Index, e.Prev, want)
		}
		leaf := pb.LeafHash(p.Extra)
		prev = &leaf
		v.Entries = append(v.Entries, e)
	}
	return v, nil
}
