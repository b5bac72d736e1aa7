package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/sqlstore"
)

// TestIdempotencyKeyFirstMigration: a database of schema 20 (idempotency
// records indexed by caller, then key) opens with every record found by
// its caller and key as before, the sweep still takes the oldest first
// (their rowids are kept), a new record of an old key is refused, and the
// index now begins with the key.
func TestIdempotencyKeyFirstMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 20)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	// Inserted newest key first, oldest record first: rowid order is age
	// order, key order is not.
	recs := []struct {
		caller, key string
		at          time.Time
	}{
		{"usr_1", "zz-old", t0.Add(-48 * time.Hour)},
		{"usr_2", "zz-old", t0.Add(-47 * time.Hour)},
		{"usr_1", "aa-new", t0},
	}
	for i, r := range recs {
		if _, err := db.Exec(`INSERT INTO idempotency (caller, key, request_hash, status, body, created_ms) VALUES (?, ?, x'01', ?, ?, ?)`,
			r.caller, r.key, 200+i, []byte(r.caller+"/"+r.key), r.at.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	ctx := t.Context()
	var keys []pb.IdempotencyKey
	for _, r := range recs {
		keys = append(keys, pb.IdempotencyKey{Caller: r.caller, Key: r.key})
	}
	got, err := s.LookupIdempotency(ctx, append(keys, pb.IdempotencyKey{Caller: "usr_3", Key: "zz-old"}))
	if err != nil || len(got) != len(recs) {
		t.Fatalf("LookupIdempotency after the migration = %d records, %v; want %d", len(got), err, len(recs))
	}
	for _, g := range got {
		if string(g.Body) != g.Caller+"/"+g.Key {
			t.Fatalf("record %s/%s has the body %q", g.Caller, g.Key, g.Body)
		}
	}
	dup := pb.IdempotencyRecord{Caller: "usr_2", Key: "zz-old", Status: 201, Body: []byte("again"), CreatedAt: t0}
	if err := s.Commit(ctx, &pb.Batch{PaymentPart: pb.PaymentPart{Idempotency: []pb.IdempotencyRecord{dup}}}); err == nil {
		t.Fatal("a second record of usr_2's key zz-old was stored")
	}
	if n, err := s.DeleteIdempotency(ctx, t0.Add(-time.Hour), 1); err != nil || n != 1 {
		t.Fatalf("DeleteIdempotency(limit 1) = %d, %v; want the oldest", n, err)
	}
	left, err := s.LookupIdempotency(ctx, keys)
	if err != nil || len(left) != 2 {
		t.Fatalf("after one sweep: %d records, %v", len(left), err)
	}
	for _, g := range left {
		if g.Caller == "usr_1" && g.Key == "zz-old" {
			t.Fatal("the sweep left the oldest record and took another")
		}
	}

	raw := openRaw(t, path)
	var ddl string
	if err := raw.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'idempotency'`).Scan(&ddl); err != nil || !strings.Contains(ddl, "PRIMARY KEY (key, caller)") {
		t.Fatalf("idempotency: %s %v", ddl, err)
	}
}

// TestNoncesTimeFirstMigration: a database of schema 21 opens with its
// signed requests' and x402 authorizations' nonces still seen, an x402
// nonce still refused under another expiry, and the sweep working on the
// new key.
func TestNoncesTimeFirstMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 21)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	sig := pb.Nonce{KeyID: "kid", Nonce: "n1", Expires: t0.Add(5 * time.Minute)}
	x := pb.Nonce{KeyID: "kid", Nonce: pb.NoncePrefixX402 + "n1", Expires: t0.Add(time.Minute)}
	for _, n := range []pb.Nonce{sig, x} {
		if _, err := db.Exec(`INSERT INTO signature_nonces (keyid, nonce, expires_ms) VALUES (?, ?, ?)`, n.KeyID, n.Nonce, n.Expires.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	ctx := t.Context()
	for _, n := range []pb.Nonce{sig, x} {
		if seen, err := s.NonceSeen(ctx, n); err != nil || !seen {
			t.Fatalf("NonceSeen(%+v) after the migration = %v, %v", n, seen, err)
		}
	}
	again := x
	again.Expires = x.Expires.Add(time.Hour)
	if err := s.Commit(ctx, &pb.Batch{AgentKeyPart: pb.AgentKeyPart{Nonces: []pb.Nonce{again}}}); err == nil {
		t.Fatal("an x402 nonce was stored again under another expiry")
	}
	if n, err := s.DeleteNonces(ctx, t0.Add(2*time.Minute), 10); err != nil || n != 1 {
		t.Fatalf("DeleteNonces = %d, %v; want the x402 nonce", n, err)
	}
	if seen, _ := s.NonceSeen(ctx, sig); !seen {
		t.Fatal("the sweep took a nonce inside its window")
	}
}

// TestKeyLookupsUseTheirIndexes: the lookups the new keys of migrations
// 0021 and 0022 serve are searches, not scans: idempotency records by
// caller and key (one and many), nonces by expiry, key and nonce, and x402
// nonces by key and nonce through the partial index, whose condition is
// sqlstore.X402NonceCond word for word.
func TestKeyLookupsUseTheirIndexes(t *testing.T) {
	raw := rawStore(t)
	var ddl string
	if err := raw.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'signature_nonces_x402'`).Scan(&ddl); err != nil || !strings.HasSuffix(ddl, "WHERE "+sqlstore.X402NonceCond) {
		t.Fatalf("signature_nonces_x402: %q, %v; want its condition to be %q", ddl, err, sqlstore.X402NonceCond)
	}
	for q, want := range map[string]string{
		`SELECT body FROM idempotency WHERE (caller, key) IN (VALUES (?,?))`:                         "USING INDEX sqlite_autoindex_idempotency_1",
		`SELECT body FROM idempotency WHERE (caller, key) IN (VALUES (?,?),(?,?),(?,?),(?,?))`:       "USING INDEX sqlite_autoindex_idempotency_1",
		`SELECT 1 FROM signature_nonces WHERE expires_ms = ? AND keyid = ? AND nonce = ?`:            "USING PRIMARY KEY",
		`SELECT 1 FROM signature_nonces WHERE keyid = ? AND nonce = ? AND ` + sqlstore.X402NonceCond: "USING COVERING INDEX signature_nonces_x402",
	} {
		if plan := queryPlan(t, raw, q, strings.Count(q, "?")); !strings.Contains(plan, want) {
			t.Errorf("%s\nplans as %q; want %q", q, plan, want)
		}
	}
	// A batch's usage event IDs: json_each outside, a key search per ID.
	if plan := queryPlan(t, raw, sqlite.UsageEventsSeenQuery, 2); !strings.Contains(plan, "SCAN j") ||
		!strings.Contains(plan, "SEARCH e USING PRIMARY KEY (event_id=? AND provider_id=?)") || strings.Contains(plan, "SCAN e") {
		t.Errorf("%s\nplans as %q; want json_each scanned and a key search in billing_event_ids", sqlite.UsageEventsSeenQuery, plan)
	}
}

// TestPartyQueriesSearch: the reads of a payer's, an agent's or a
// merchant's payments (sqlstore.PartyPayments) search payment_parties by
// party and ID, newest first without a sort of the party's entries, and
// read the payments after the mark by their rowid: never a scan of
// payments, nor a walk of an index over all of them.
func TestPartyQueriesSearch(t *testing.T) {
	raw := rawStore(t)
	for _, c := range []struct{ col, op, id, want string }{
		{"payer_id", "", "", "SEARCH x USING PRIMARY KEY (party=?)"},
		{"payer_id", "<", "pay_x", "SEARCH x USING PRIMARY KEY (party=? AND pid<?)"},
		{"payer_id", ">=", "pay_x", "SEARCH x USING PRIMARY KEY (party=? AND pid>?)"},
		{"agent_id", "<", "pay_x", "SEARCH x USING PRIMARY KEY (party=? AND pid<?)"},
		{"merchant_id", "<", "pay_x", "SEARCH x USING PRIMARY KEY (party=? AND pid<?)"},
	} {
		q, args := sqlstore.PartyPayments(true, "id, merchant_id, status", c.col, "usr_1", c.op, c.id, 10)
		plan := queryPlan(t, raw, q, len(args))
		for _, want := range []string{c.want, "SEARCH payments USING INTEGER PRIMARY KEY (rowid=?)", "SEARCH payments USING INTEGER PRIMARY KEY (rowid>?)"} {
			if !strings.Contains(plan, want) {
				t.Errorf("%s\nplans as %q; want %q", q, plan, want)
			}
		}
		if strings.Contains(plan, "SCAN payments") || strings.Contains(plan, "USING INDEX") || strings.Contains(plan, "SCAN x") {
			t.Errorf("%s\nplans as %q: a scan, or an index of payments", q, plan)
		}
	}
}

// rawStore opens a new store, then its database on a connection of its own.
func rawStore(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "paybound.db")
	open(t, path)
	return openRaw(t, path)
}

// openRaw opens the database at path on a connection of its own, closed
// when t ends.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// queryPlan is SQLite's plan of q, whose n arguments are all "x", its
// steps joined by "; ".
func queryPlan(t *testing.T, db *sql.DB, q string, n int) string {
	t.Helper()
	args := make([]any, n)
	for i := range args {
		args[i] = "x"
	}
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}
