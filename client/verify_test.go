package client

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/tlog"
)

// receiptLog is a log of one payment's entries, in memory, signed as the
// server signs it, from which a test cuts receipts.
type receiptLog struct {
	vkey    string
	entries [][]byte
	leaves  []string // hex
	proofs  []string // tlog-proof of each entry, with its bytes
	bare    []string // the same without the bytes: for a withheld entry
	opening *pb.RiskOpening
}

const receiptPay = "pay_01jq8v6x3k2m4n5p6q7r8s9t0v"

// newReceiptLog logs payment.created (committing to a risk assessment),
// confirmation.asked and payment.authorized, chained as the server chains
// a payment's entries.
func newReceiptLog(t *testing.T) *receiptLog {
	t.Helper()
	skey, vkey, err := tlog.NewKey("paybound.test/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	risk := &pb.Risk{Decision: pb.RiskReview, Score: 45, Signals: []pb.RiskSignal{{Name: "new_payee_large_amount", Points: 35}, {Name: "bearer_agent", Points: 10}}}
	opening, err := pb.OpenRisk(risk, strings.Repeat("5a", 16))
	if err != nil {
		t.Fatal(err)
	}
	commitment, _ := opening.Commitment()
	l := &receiptLog{vkey: vkey, opening: opening}
	var m tlog.Memory
	at := time.Date(2026, 8, 1, 7, 30, 0, 0, time.UTC)
	var prev *[32]byte
	for _, ev := range []pb.LogEvent{
		{Type: pb.LogPaymentCreated, Data: map[string]any{"amount": 650000, "risk_sha256": commitment}},
		{Type: pb.LogConfirmationAsked, Data: map[string]any{"reason": "risk_review", "salt": strings.Repeat("c3", 16)}},
		{Type: pb.LogPaymentAuthorized, Data: map[string]any{"amount": 650000, "basis": "confirmation"}},
	} {
		ev.Subject, ev.Actor = receiptPay, pb.Actor{Role: pb.RoleAgent, ID: "agt_1", Assurance: pb.AssuranceBearer}
		body, err := pb.EncodeLogEntry(ev, at, prev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Append(body); err != nil {
			t.Fatal(err)
		}
		leaf := pb.LeafHash(body)
		prev = &leaf
		l.entries, l.leaves = append(l.entries, body), append(l.leaves, hex.EncodeToString(leaf[:]))
	}
	root, _ := m.Root(m.Size())
	note, err := s.Sign(m.Size(), root)
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range l.entries {
		hs, err := m.ProveInclusion(int64(i), m.Size())
		if err != nil {
			t.Fatal(err)
		}
		p := tlog.InclusionProof{Extra: body, Index: int64(i), Hashes: hs, Checkpoint: note}
		l.proofs = append(l.proofs, tlog.FormatProof(p))
		p.Extra = nil
		l.bare = append(l.bare, tlog.FormatProof(p))
	}
	return l
}

func (l *receiptLog) receipt(proofs ...string) *Receipt {
	return &Receipt{Object: "receipt", PaymentID: receiptPay, LogKey: l.vkey, Proofs: proofs}
}

// TestVerifyReceiptWithheld: an entry withheld from the receipt's holder
// is checked by its leaf hash when the receipt gives it, so the chain is
// still checked across it; one given without its leaf hash leaves only
// the next entry's prev unchecked, and says so.
func TestVerifyReceiptWithheld(t *testing.T) {
	t.Parallel()
	l := newReceiptLog(t)
	if v, err := VerifyReceipt(l.receipt(l.proofs...), l.vkey); err != nil || len(v.Entries) != 3 {
		t.Fatalf("the whole receipt: %v %+v", err, v)
	}

	r := l.receipt(l.proofs[0], l.bare[1], l.proofs[2])
	r.Withheld = []WithheldEntry{{Index: 1, Type: pb.LogConfirmationAsked, Reason: "confirmation_reason", LeafHash: l.leaves[1]}}
	v, err := VerifyReceipt(r, l.vkey)
	if err != nil {
		t.Fatalf("withheld with its leaf hash: %v", err)
	}
	if len(v.Entries) != 3 || v.Entries[1].Withheld != "confirmation_reason" || v.Entries[1].Body != nil ||
		v.Entries[1].Leaf != l.leaves[1] || v.Entries[2].Unchained {
		t.Fatalf("withheld with its leaf hash: %+v", v.Entries)
	}

	r.Withheld[0].LeafHash = l.leaves[0]
	if _, err := VerifyReceipt(r, l.vkey); !errors.Is(err, tlog.ErrNotIncluded) {
		t.Fatalf("another leaf hash for the withheld entry: %v, want ErrNotIncluded", err)
	}

	r = l.receipt(l.proofs[0], l.proofs[2])
	r.Withheld = []WithheldEntry{{Index: 1, Type: pb.LogConfirmationAsked, Reason: "confirmation_reason"}}
	v, err = VerifyReceipt(r, l.vkey)
	if err != nil {
		t.Fatalf("withheld without its leaf hash: %v", err)
	}
	if len(v.Entries) != 3 || v.Entries[1].Withheld == "" || v.Entries[1].Leaf != "" || !v.Entries[2].Unchained || v.Entries[0].Unchained {
		t.Fatalf("withheld without its leaf hash: %+v", v.Entries)
	}

	for name, r := range map[string]*Receipt{
		// The chain is checked across an entry withheld with its leaf
		// hash: dropping it shows.
		"withheld entry dropped":          l.receipt(l.proofs[0], l.proofs[2]),
		"given and listed as withheld":    withheld(l.receipt(l.proofs...), WithheldEntry{Index: 1, LeafHash: l.leaves[1]}),
		"bare proof, no withheld entry":   l.receipt(l.proofs[0], l.bare[1], l.proofs[2]),
		"bare proof, withheld, no leaf":   withheld(l.receipt(l.proofs[0], l.bare[1], l.proofs[2]), WithheldEntry{Index: 1}),
		"leaf hash without a proof":       withheld(l.receipt(l.proofs[0], l.proofs[2]), WithheldEntry{Index: 1, LeafHash: l.leaves[1]}),
		"leaf hash that is not SHA-256":   withheld(l.receipt(l.proofs[0], l.bare[1], l.proofs[2]), WithheldEntry{Index: 1, LeafHash: "abc"}),
		"withheld entry listed twice":     withheld(l.receipt(l.proofs[0], l.proofs[2]), WithheldEntry{Index: 1}, WithheldEntry{Index: 1}),
		"every entry withheld, no proofs": withheld(l.receipt(), WithheldEntry{Index: 0}),
	} {
		if _, err := VerifyReceipt(r, l.vkey); !errors.Is(err, ErrReceipt) {
			t.Errorf("%s: %v, want ErrReceipt", name, err)
		}
	}
}

func withheld(r *Receipt, w ...WithheldEntry) *Receipt {
	r.Withheld = w
	return r
}

// TestVerifyReceiptRisk: a receipt's risk opening must open the risk_sha256
// of its payment.created entry, whole or in part.
func TestVerifyReceiptRisk(t *testing.T) {
	t.Parallel()
	l := newReceiptLog(t)
	r := l.receipt(l.proofs...)
	r.Risk = l.opening
	v, err := VerifyReceipt(r, l.vkey)
	if err != nil || v.Risk == nil || v.Risk.Detail.Score != 45 {
		t.Fatalf("the whole opening: %v %+v", err, v)
	}
	r.Risk = l.opening.Partial()
	if _, err := VerifyReceipt(r, l.vkey); err != nil {
		t.Fatalf("the agent's part: %v", err)
	}
	lower := *l.opening.Detail
	lower.Score = 5
	r.Risk = &pb.RiskOpening{Decision: l.opening.Decision, Detail: &lower, DetailSHA256: l.opening.DetailSHA256, Salt: l.opening.Salt, Signals: l.opening.Signals}
	if _, err := VerifyReceipt(r, l.vkey); !errors.Is(err, pb.ErrRiskOpening) || !errors.Is(err, ErrReceipt) {
		t.Fatalf("a lower score: %v, want ErrRiskOpening", err)
	}
	allowed := *l.opening.Partial()
	allowed.Decision = pb.RiskAllow
	r.Risk = &allowed
	if _, err := VerifyReceipt(r, l.vkey); !errors.Is(err, pb.ErrRiskOpening) {
		t.Fatalf("another decision: %v, want ErrRiskOpening", err)
	}
	// An opening with no payment.created entry to check it against.
	r = l.receipt(l.bare[0], l.proofs[1], l.proofs[2])
	r.Withheld = []WithheldEntry{{Index: 0, Type: pb.LogPaymentCreated, Reason: "agent_request", LeafHash: l.leaves[0]}}
	r.Risk = l.opening
	if _, err := VerifyReceipt(r, l.vkey); !errors.Is(err, pb.ErrRiskOpening) {
		t.Fatalf("no entry to open: %v, want ErrRiskOpening", err)
	}
}
