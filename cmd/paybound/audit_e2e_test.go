package main

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
	"github.com/paybound/paybound/internal/storetest"
)

// TestDisputesAndAuditOverCLI opens and resolves a dispute with the CLI,
// then audits the server: it passes, and fails once a log entry or a
// payment is changed behind the server's back.
func TestDisputesAndAuditOverCLI(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	var ids []string
	for _, amount := range []int{1000, 2500, 400} {
		p := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": amount, "currency": "USD", "merchant_id": w.merch}))
		ids = append(ids, p.str("id"))
	}
	w.ok(201, w.call("POST", "/v1/payments/"+ids[1]+"/refunds", w.merchKey, "", map[string]any{"amount": 500}))
	hold := w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 300, "currency": "USD",
		"merchant_id": w.merch, "capture_method": "manual"}))
	w.ok(200, w.call("POST", "/v1/payments/"+hold.str("id")+"/cancel", w.merchKey, "", nil))

	out, errOut, err := w.cli(w.userKey, "disputes", "open", ids[0], "--reason", "merchant_error", "--details", "never delivered", "--json")
	if err != nil {
		t.Fatalf("disputes open: %v %s", err, errOut)
	}
	var d pb.Dispute
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Status != pb.DisputeOpen || d.Proposal.Attribution != pb.AttributionNone {
		t.Fatalf("dispute: %v %s", err, out)
	}
	if _, errOut, err := w.cli(w.userKey, "disputes", "open", ids[0], "--reason", "bogus"); err == nil || !strings.Contains(errOut, "parameter_invalid") {
		t.Fatalf("a bad reason: %v %s", err, errOut)
	}
	if out, errOut, err := w.cli(w.merchKey, "disputes", "list", "--status", "open"); err != nil || !strings.Contains(out, d.ID) {
		t.Fatalf("merchant lists open disputes: %v %s %s", err, out, errOut)
	}
	out, errOut, err = w.cli(w.op, "disputes", "resolve", d.ID, "--outcome", "refund_partial", "--amount", "2.50", "--liable", "merchant")
	if err != nil || !strings.Contains(out, "resolved") || !strings.Contains(out, "2.50 USD") {
		t.Fatalf("disputes resolve: %v %s %s", err, out, errOut)
	}
	if p := w.ok(200, w.call("GET", "/v1/payments/"+ids[0], w.userKey, "", nil)); p.num("amount_refunded") != 250 {
		t.Fatalf("after the dispute: %s", p.raw)
	}
	if r := w.call("GET", "/v1/disputes/"+d.ID, w.merch2Key, "", nil); r.status != 404 {
		t.Fatalf("another merchant reads the dispute: %d", r.status)
	}

	out, errOut, err = w.cli(w.op, "audit", "--duration", "1500ms", "--interval", "500ms")
	if err != nil || !strings.Contains(out, "OK: the log and the ledger agree") {
		t.Fatalf("audit: %v\n%s\n%s", err, out, errOut)
	}
	if storetest.UsePostgres() {
		return // the tampering below edits the SQLite file
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(w.m.Config.DataDir, "paybound.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A payment's refunded amount changed in the ledger's tables only.
	if _, err := db.Exec(`UPDATE payments SET amount_refunded = amount_refunded + 1 WHERE id = ?`, ids[2]); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := w.cli(w.op, "audit", "--duration", "0s"); err == nil || !strings.Contains(errOut, ids[2]) {
		t.Fatalf("audit of a changed payment: %v\n%s\n%s", err, out, errOut)
	}
	db.Exec(`UPDATE payments SET amount_refunded = amount_refunded - 1 WHERE id = ?`, ids[2])
	// A byte of a logged entry changed.
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(old), []byte(new)) }
	}
	if n := editEntries(t, db, ids[1], replace(`"amount":2500`, `"amount":2600`)); n == 0 {
		t.Fatal("changed no entry")
	}
	if out, errOut, err := w.cli(w.op, "audit", "--duration", "0s"); err == nil || !strings.Contains(errOut, ids[1]) {
		t.Fatalf("audit of a changed entry: %v\n%s\n%s", err, out, errOut)
	}
	editEntries(t, db, ids[1], replace(`"amount":2600`, `"amount":2500`))
	if _, _, err := w.cli(w.op, "audit", "--duration", "0s"); err != nil {
		t.Fatalf("audit after undoing the change: %v", err)
	}
	// The last entry of a payment changed: no later entry names it, but the
	// tree's root does.
	if n := editEntries(t, db, ids[1], func(b []byte) []byte {
		if !bytes.Contains(b, []byte("payment.refunded")) {
			return b
		}
		return replace(`"amount":500`, `"amount":600`)(b)
	}); n != 1 {
		t.Fatalf("changed %d entries", n)
	}
	if out, errOut, err := w.cli(w.op, "audit", "--duration", "0s"); err == nil || !strings.Contains(errOut, "root") {
		t.Fatalf("audit of a changed last entry: %v\n%s\n%s", err, out, errOut)
	}
}

// editEntries rewrites, in a SQLite file behind the server's back, the
// logged entries of a payment that edit changes (keeping their length),
// and returns how many it changed. A payment's row lists its entries'
// indexes, and entries are stored in bundles, each after its 2-byte
// big-endian length, the bundle deflated (internal/sqlite/bundle.go).
func editEntries(t *testing.T, db *sql.DB, payment string, edit func([]byte) []byte) int {
	t.Helper()
	var list []byte
	if err := db.QueryRow(`SELECT log_idx FROM payments WHERE id = ?`, payment).Scan(&list); err != nil {
		t.Fatal(err)
	}
	changed := 0
	for ; len(list) >= 8; list = list[8:] {
		idx := int64(binary.BigEndian.Uint64(list))
		var first int64
		var stored []byte
		if err := db.QueryRow(`SELECT first, entries FROM log_bundles WHERE first <= ? ORDER BY first DESC LIMIT 1`, idx).Scan(&first, &stored); err != nil {
			t.Fatal(err)
		}
		b, err := sqlstore.Inflate(stored)
		if err != nil {
			t.Fatal(err)
		}
		off := 0
		for k := first; k < idx; k++ {
			off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		entry := b[off+2 : off+2+n]
		if e := edit(slices.Clone(entry)); !bytes.Equal(e, entry) {
			if len(e) != n {
				t.Fatalf("an edit changed entry %d's length", idx)
			}
			copy(entry, e)
			if _, err := db.Exec(`UPDATE log_bundles SET entries = ? WHERE first = ?`, sqlstore.Deflate(b), first); err != nil {
				t.Fatal(err)
			}
			changed++
		}
	}
	return changed
}
