package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	tl "github.com/paybound/paybound/internal/tlog"
)

// logEntry decodes an entry's type, subject and data.
type logEntry struct {
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Prev    string          `json:"prev"`
	Actor   pb.Actor        `json:"actor"`
	Data    json.RawMessage `json:"data"`
}

// TestTraceOverHTTP follows one payment through its life and checks that
// its trace holds every step, in order, chained, each proven against a
// checkpoint signed by the key the server publishes.
func TestTraceOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	vkey := string(w.ok(200, w.call("GET", "/v1/log/key", "", "", nil)).raw)
	vkey = strings.TrimSpace(vkey)
	p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 1000, "currency": "USD",
		"merchant_id": w.merch, "capture_method": "manual"}))
	id := p.str("id")
	w.ok(200, w.call("POST", "/v1/payments/"+id+"/capture", w.merchKey, "", map[string]any{"amount": 800}))
	w.ok(201, w.call("POST", "/v1/payments/"+id+"/refunds", w.merchKey, "", map[string]any{"amount": 300, "reason": "one item missing"}))

	tr := w.ok(200, w.call("GET", "/v1/payments/"+id+"/trace", w.userKey, "", nil))
	var trace client.Trace
	if err := json.Unmarshal(tr.raw, &trace); err != nil {
		t.Fatal(err)
	}
	c, err := tl.Open([]byte(trace.Checkpoint), vkey)
	if err != nil {
		t.Fatalf("trace checkpoint: %v", err)
	}
	want := []string{pb.LogPaymentCreated, pb.LogPaymentAuthorized, pb.LogPaymentCaptured, pb.LogPaymentRefunded}
	if len(trace.Entries) != len(want) {
		t.Fatalf("trace has %d entries, want %d: %s", len(trace.Entries), len(want), tr.raw)
	}
	prev := ""
	for i, e := range trace.Entries {
		var ent logEntry
		if err := json.Unmarshal([]byte(e.Entry), &ent); err != nil {
			t.Fatal(err)
		}
		if ent.Type != want[i] || ent.Subject != id || ent.Prev != prev {
			t.Fatalf("entry %d = %s about %s prev %q; want %s about %s prev %q", i, ent.Type, ent.Subject, ent.Prev, want[i], id, prev)
		}
		hs, err := decodeHashes(e.InclusionProof)
		if err != nil {
			t.Fatal(err)
		}
		if err := tl.VerifyInclusion([]byte(e.Entry), e.Index, hs, c); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		leaf := pb.LeafHash([]byte(e.Entry))
		prev = hex.EncodeToString(leaf[:])
		// The entry's own endpoint serves the same bytes, to a party.
		got := w.ok(200, w.call("GET", "/v1/log/entries/"+itoa(e.Index), w.merchKey, "", nil))
		if string(got.raw) != e.Entry {
			t.Fatalf("GET /v1/log/entries/%d = %s, want %s", e.Index, got.raw, e.Entry)
		}
	}
	var cap, ref struct{ Amount int64 }
	json.Unmarshal(entryData(t, trace.Entries[2].Entry), &cap)
	json.Unmarshal(entryData(t, trace.Entries[3].Entry), &ref)
	if cap.Amount != 800 || ref.Amount != 300 {
		t.Fatalf("captured %d, refunded %d in the log; want 800, 300", cap.Amount, ref.Amount)
	}
	// Someone who is no party to the payment sees neither trace nor entries.
	w.ok(404, w.call("GET", "/v1/payments/"+id+"/trace", w.merch2Key, "", nil))
	w.ok(404, w.call("GET", "/v1/log/entries/"+itoa(trace.Entries[0].Index), w.merch2Key, "", nil))
	w.ok(401, w.call("GET", "/v1/log/entries/0", "", "", nil))

	// Proofs and checkpoints are public, and consistent as the log grows.
	first := w.ok(200, w.call("GET", "/v1/log/checkpoint", "", "", nil))
	c1, err := tl.Open(first.raw, vkey)
	if err != nil {
		t.Fatal(err)
	}
	w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch}))
	c2, err := tl.Open(w.ok(200, w.call("GET", "/v1/log/checkpoint", "", "", nil)).raw, vkey)
	if err != nil || c2.Size <= c1.Size {
		t.Fatalf("checkpoint after a payment: %v size %d, before %d", err, c2.Size, c1.Size)
	}
	cp := w.ok(200, w.call("GET", "/v1/log/proof/consistency?old="+itoa(c1.Size)+"&new="+itoa(c2.Size), "", "", nil))
	var proof client.Proof
	json.Unmarshal(cp.raw, &proof)
	hs, _ := decodeHashes(proof.Hashes)
	if err := tl.VerifyConsistency(c1, c2, hs); err != nil {
		t.Fatal(err)
	}
	ip := w.ok(200, w.call("GET", "/v1/log/proof/inclusion?index=0&size="+itoa(c2.Size), "", "", nil))
	json.Unmarshal(ip.raw, &proof)
	hs, _ = decodeHashes(proof.Hashes)
	e0 := w.ok(200, w.call("GET", "/v1/log/entries/0", w.op, "", nil))
	if err := tl.VerifyInclusion(e0.raw, 0, hs, c2); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ path, param string }{
		{"/v1/log/proof/inclusion?index=0", "size"},
		{"/v1/log/proof/inclusion?index=5&size=5", "index"},
		{"/v1/log/proof/inclusion?index=0&size=" + itoa(c2.Size+1), "size"},
		{"/v1/log/proof/inclusion?index=-1&size=1", "index"},
		{"/v1/log/proof/consistency?old=3&new=2", "old"},
		{"/v1/log/proof/consistency?old=x&new=2", "old"},
	} {
		r := w.call("GET", bad.path, "", "", nil)
		if r.status != 400 || r.errField("param") != bad.param {
			t.Errorf("GET %s = %d %s; want 400 with param %s", bad.path, r.status, r.raw, bad.param)
		}
	}
	w.ok(404, w.call("GET", "/v1/log/entries/99999999", w.op, "", nil))
	w.ok(400, w.call("GET", "/v1/log/entries/x", w.op, "", nil))
}

func entryData(t *testing.T, entry string) json.RawMessage {
	var e logEntry
	if err := json.Unmarshal([]byte(entry), &e); err != nil {
		t.Fatal(err)
	}
	return e.Data
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestReceiptVerifiesOffline saves a real receipt with the CLI and checks it
// with `paybound verify receipt`: it passes as issued, and fails loudly on
// a changed byte, a wrong key, a truncated proof and a forked log.
func TestReceiptVerifiesOffline(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 1250, "currency": "USD", "merchant_id": w.merch}))
	id := p.str("id")
	dir := t.TempDir()
	file, seen := filepath.Join(dir, "receipt.json"), filepath.Join(dir, "seen.json")
	out, errOut, err := w.cli(w.userKey, "payments", "receipt", id, "--out", file)
	if err != nil {
		t.Fatalf("payments receipt: %v %s", err, errOut)
	}
	vkey, err := client.New(w.base, "").LogKey(t.Context())
	if err != nil || !strings.Contains(out, vkey) {
		t.Fatalf("log key %q (%v); the CLI printed %s", vkey, err, out)
	}
	verify := func(file, key string, extra ...string) (string, error) {
		out, errOut, err := w.cli("", append([]string{"verify", "receipt", file, "--log-key", key, "--seen", seen}, extra...)...)
		return out + errOut, err
	}
	if out, err := verify(file, vkey); err != nil || !strings.Contains(out, "OK: 3 entries of "+id) {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(file)
	var r client.Receipt
	json.Unmarshal(raw, &r)
	tamper := func(name string, change func(r *client.Receipt)) string {
		var c client.Receipt
		json.Unmarshal(raw, &c)
		change(&c)
		b, _ := json.Marshal(c)
		path := filepath.Join(dir, name+".json")
		os.WriteFile(path, b, 0o644)
		return path
	}
	// A changed byte in an entry: the amount.
	changed := tamper("changed", func(c *client.Receipt) {
		pr, _ := tl.ParseProof(c.Proofs[0])
		pr.Extra = []byte(strings.Replace(string(pr.Extra), `"amount":1250`, `"amount":1350`, 1))
		c.Proofs[0] = tl.FormatProof(pr)
	})
	if out, err := verify(changed, vkey); !errors.Is(err, tl.ErrNotIncluded) || !strings.Contains(out, "not in the tree") {
		t.Fatalf("a changed entry: %v\n%s", err, out)
	}
	_, otherKey, _ := tl.NewKey(strings.SplitN(vkey, "+", 2)[0])
	if out, err := verify(file, otherKey); !errors.Is(err, tl.ErrBadSignature) {
		t.Fatalf("a wrong key: %v\n%s", err, out)
	}
	truncated := tamper("truncated", func(c *client.Receipt) {
		pr, _ := tl.ParseProof(c.Proofs[1])
		pr.Hashes = pr.Hashes[:len(pr.Hashes)-1]
		c.Proofs[1] = tl.FormatProof(pr)
	})
	if _, err := verify(truncated, vkey); !errors.Is(err, tl.ErrNotIncluded) {
		t.Fatalf("a truncated proof: %v", err)
	}
	dropped := tamper("dropped", func(c *client.Receipt) { c.Proofs = append(c.Proofs[:1], c.Proofs[2:]...) })
	if out, err := verify(dropped, vkey); !errors.Is(err, client.ErrReceipt) || !strings.Contains(out, "missing or was changed") {
		t.Fatalf("an entry left out: %v\n%s", err, out)
	}
	// A fork: the log's own key signs another tree of the same size (as a
	// compromised server would to show different users different logs).
	skey, _ := os.ReadFile(filepath.Join(w.m.Config.DataDir, "log.key"))
	signer, err := tl.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	pr, _ := tl.ParseProof(r.Proofs[0])
	c, _ := tl.Open(pr.Checkpoint, vkey)
	forged, _ := signer.Sign(c.Size, tl.LeafHash([]byte("another history")))
	os.WriteFile(seen, []byte(`{`+quote(vkey)+`: `+quote(string(forged))+`}`), 0o600)
	if out, err := verify(file, vkey); !errors.Is(err, tl.ErrFork) {
		t.Fatalf("a forked log: %v\n%s", err, out)
	}
	// A checkpoint seen earlier of another size is checked with a
	// consistency proof from the server when --url is given.
	older, _ := signer.Sign(1, tl.LeafHash([]byte("not the first entry")))
	os.WriteFile(seen, []byte(`{`+quote(vkey)+`: `+quote(string(older))+`}`), 0o600)
	if out, err := verify(file, vkey); err != nil || !strings.Contains(out, "pass --url") {
		t.Fatalf("without --url: %v\n%s", err, out)
	}
	// Unchecked, the receipt's checkpoint did not replace the one seen.
	if b, _ := os.ReadFile(seen); !strings.Contains(string(b), quote(string(older))[1:20]) {
		t.Fatalf("an unchecked checkpoint replaced the one seen: %s", b)
	}
	if out, err := verify(file, vkey, "--url", w.base); !errors.Is(err, tl.ErrInconsistent) {
		t.Fatalf("an inconsistent earlier checkpoint: %v\n%s", err, out)
	}
	os.Remove(seen)
	if out, err := verify(file, vkey); err != nil {
		t.Fatalf("verify with a fresh seen file: %v\n%s", err, out)
	}
	w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch}))
	later := filepath.Join(dir, "later.json")
	if _, e, err := w.cli(w.userKey, "payments", "receipt", id, "--out", later); err != nil {
		t.Fatal(e)
	}
	if out, err := verify(later, vkey, "--url", w.base); err != nil {
		t.Fatalf("a later receipt, consistent: %v\n%s", err, out)
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// decodeHashes decodes a proof's hashes, base64 as the API sends them.
func decodeHashes(b64 []string) ([]tl.Hash, error) {
	hs := make([]tl.Hash, len(b64))
	for i, s := range b64 {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != len(hs[i]) {
			return nil, fmt.Errorf("proof hash %q is not base64 SHA-256", s)
		}
		hs[i] = tl.Hash(raw)
	}
	return hs, nil
}
