package client_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/internal/tlog"
)

// fakeLog stands in for the part of a Paybound server that an auditor
// reads: a transparency log of payments, signed as the server signs it,
// the payments as the ledger holds them, and the endpoints serving both.
// It panics on a broken setup, so that examples can use it too.
type fakeLog struct {
	*httptest.Server
	LogKey string

	mu       sync.Mutex
	signer   *tlog.Signer
	mem      tlog.Memory
	entries  [][]byte
	heads    map[string][32]byte // each subject's last entry's leaf hash
	indexes  map[string][]int64  // each payment's entries
	payments []pb.Payment        // oldest first
	ledgerOK bool
	// checkpoint, when set, replaces the signed checkpoint served.
	checkpoint func(signed []byte) []byte
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newFakeLog() *fakeLog {
	skey, vkey := must2(tlog.NewKey("paybound.example/log"))
	l := &fakeLog{LogKey: vkey, signer: must(tlog.NewSigner(skey)), heads: map[string][32]byte{},
		indexes: map[string][]int64{}, ledgerOK: true}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/log/key", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(l.LogKey + "\n")) })
	mux.HandleFunc("GET /v1/log/checkpoint", func(w http.ResponseWriter, r *http.Request) { w.Write(l.signedCheckpoint()) })
	mux.HandleFunc("GET /v1/log/proof/consistency", l.serveConsistency)
	mux.HandleFunc("GET /v1/log/tile/entries/{path...}", l.serveBundle)
	mux.HandleFunc("GET /v1/payments", l.serveList)
	mux.HandleFunc("GET /v1/payments/{id}", l.onPayment(func(p *pb.Payment) any { return p }))
	mux.HandleFunc("GET /v1/payments/{id}/trace", l.onPayment(l.trace))
	mux.HandleFunc("GET /v1/payments/{id}/receipt", l.onPayment(l.receipt))
	mux.HandleFunc("GET /v1/ledger/verify", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		writeJSON(w, client.Report{OK: l.ledgerOK, Problems: []string{}})
	})
	l.Server = httptest.NewServer(mux)
	return l
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// pay records a payment of amount (minor units of USD), of which captured
// is captured and then refunded refunded, in the log and the ledger.
func (l *fakeLog) pay(id string, amount, captured, refunded int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log(id, pb.LogPaymentCreated, amount)
	status := pb.StatusAuthorized
	if captured > 0 {
		l.log(id, pb.LogPaymentCaptured, captured)
		status = pb.StatusCaptured
	}
	if refunded > 0 {
		l.log(id, pb.LogPaymentRefunded, refunded)
	}
	l.payments = append(l.payments, pb.Payment{ID: id, Object: "payment", Status: status, Amount: amount,
		AmountCaptured: captured, AmountRefunded: refunded, Currency: "USD"})
}

// log appends an entry about subject, chained to its last one.
func (l *fakeLog) log(subject, typ string, amount int64) {
	var prev *[32]byte
	if h, ok := l.heads[subject]; ok {
		prev = &h
	}
	ev := pb.LogEvent{Type: typ, Subject: subject, Actor: pb.Actor{Role: pb.RoleUser, ID: "usr_1"},
		Data: map[string]any{"amount": amount}}
	body := must(pb.EncodeLogEntry(ev, time.Date(2026, 8, 1, 7, 30, 0, 0, time.UTC), prev))
	idx := must(l.mem.Append(body))
	l.entries = append(l.entries, body)
	l.heads[subject] = pb.LeafHash(body)
	l.indexes[subject] = append(l.indexes[subject], idx)
}

// setCheckpoint makes the log serve f(signed) for each signed checkpoint.
func (l *fakeLog) setCheckpoint(f func(signed []byte) []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkpoint = f
}

// setPayment changes the ledger's record of payment id.
func (l *fakeLog) setPayment(id string, change func(p *pb.Payment)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.payments {
		if l.payments[i].ID == id {
			change(&l.payments[i])
		}
	}
}

func (l *fakeLog) signedCheckpoint() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkpointLocked()
}

func (l *fakeLog) checkpointLocked() []byte {
	root := tlog.EmptyRoot
	if l.mem.Size() > 0 {
		root = must(l.mem.Root(l.mem.Size()))
	}
	signed := must(l.signer.Sign(l.mem.Size(), root))
	if l.checkpoint != nil {
		return l.checkpoint(signed)
	}
	return signed
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNotFound)
	writeJSON(w, map[string]any{"error": &pb.Error{Code: pb.ErrNotFound, Message: "no such object"}})
}

func base64Hashes(hs []tlog.Hash) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out
}

func (l *fakeLog) serveConsistency(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, _ := strconv.ParseInt(r.URL.Query().Get("old"), 10, 64)
	size, _ := strconv.ParseInt(r.URL.Query().Get("new"), 10, 64)
	var hs []tlog.Hash
	if old > 0 && old < size {
		hs = must(l.mem.ProveConsistency(old, size))
	}
	writeJSON(w, client.Proof{Old: old, New: size, Hashes: base64Hashes(hs)})
}

// serveBundle serves an entry bundle: each entry after its length, two
// bytes big-endian.
func (l *fakeLog) serveBundle(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := int64(len(l.entries))
	for n := int64(0); n*256 < size; n++ {
		for width := int64(1); width <= min(256, size-n*256); width++ {
			if tlog.TilePath(-1, n, int(width)) != "entries/"+r.PathValue("path") {
				continue
			}
			var b []byte
			for _, e := range l.entries[n*256 : n*256+width] {
				b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
				b = append(b, e...)
			}
			w.Write(b)
			return
		}
	}
	notFound(w)
}

func (l *fakeLog) serveList(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := slices.Clone(l.payments)
	slices.Reverse(list) // newest first
	writeJSON(w, client.PaymentList{Object: "list", Data: list})
}

func (l *fakeLog) payment(id string) *pb.Payment {
	for i := range l.payments {
		if l.payments[i].ID == id {
			return &l.payments[i]
		}
	}
	return nil
}

// onPayment serves what view makes of payment {id}, or a 404.
func (l *fakeLog) onPayment(view func(p *pb.Payment) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		p := l.payment(r.PathValue("id"))
		if p == nil {
			notFound(w)
			return
		}
		writeJSON(w, view(p))
	}
}

// trace is a payment's trace, every entry proven in the latest checkpoint.
func (l *fakeLog) trace(p *pb.Payment) any {
	t := client.Trace{Object: "trace", PaymentID: p.ID, Checkpoint: string(l.checkpointLocked())}
	for _, idx := range l.indexes[p.ID] {
		hs := must(l.mem.ProveInclusion(idx, l.mem.Size()))
		t.Entries = append(t.Entries, client.TraceEntry{Index: idx, Entry: string(l.entries[idx]), InclusionProof: base64Hashes(hs)})
	}
	return t
}

// receipt is a payment's receipt, a tlog-proof per entry.
func (l *fakeLog) receipt(p *pb.Payment) any {
	note := l.checkpointLocked()
	rc := client.Receipt{Object: "receipt", PaymentID: p.ID, LogKey: l.LogKey}
	for _, idx := range l.indexes[p.ID] {
		hs := must(l.mem.ProveInclusion(idx, l.mem.Size()))
		rc.Proofs = append(rc.Proofs, tlog.FormatProof(tlog.InclusionProof{Extra: l.entries[idx], Index: idx, Hashes: hs, Checkpoint: note}))
	}
	return rc
}
