package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/storetest"
	"github.com/paybound/paybound/internal/tlog"
	xtlog "golang.org/x/mod/sumdb/tlog"
)

// open opens a store on path, closed when the test ends.
func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close(%s): %v", path, err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) pb.Store {
		return open(t, filepath.Join(t.TempDir(), "paybound.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paybound.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	p := pb.Payment{ID: pb.NewID(pb.PrefixPayment, now), Object: "payment", Status: pb.StatusCaptured, Amount: 300,
		AmountCaptured: 300, Currency: "CNY", MerchantID: "mch_cafe", PayerID: "usr_alice", CaptureMethod: pb.CaptureAutomatic,
		Metadata: map[string]string{"k": "v"}, CreatedAt: now}
	b := &pb.Batch{
		LedgerPart: pb.LedgerPart{
			Accounts:  []pb.Account{{ID: 1, Owner: "usr_alice", Currency: "CNY", CreditsPosted: 700}},
			Transfers: []pb.Transfer{{ID: 1, Kind: pb.TransferPosted, DebitAccountID: 1, CreditAccountID: 1, Amount: 1, Currency: "CNY", Ref: "top_1", CreatedAt: now}},
		},
		PaymentPart: pb.PaymentPart{
			Payments:        []pb.Payment{p},
			PaymentVersions: []int64{0},
			Users:           []pb.User{{ID: "usr_alice", Name: "Alice", CreatedAt: now}},
			Idempotency:     []pb.IdempotencyRecord{{Caller: "usr_alice", Key: "k", Status: 201, Body: []byte("{}"), CreatedAt: now}},
		},
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	if u, err := s.User(ctx, "usr_alice"); err != nil || u.Name != "Alice" {
		t.Errorf("User(usr_alice) after reopening = (%+v, %v), want Alice", u, err)
	}
	if a, err := s.Account(ctx, "usr_alice", "CNY"); err != nil || a.CreditsPosted != 700 {
		t.Errorf("Account(usr_alice, CNY) after reopening = (%+v, %v), want CreditsPosted 700", a, err)
	}
	if got, err := s.Payment(ctx, p.ID); err != nil || got.Status != pb.StatusCaptured || got.Metadata["k"] != "v" {
		t.Errorf("Payment(%s) after reopening = (%+v, %v), want it as committed", p.ID, got, err)
	}
	if recs, err := s.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: "usr_alice", Key: "k"}}); err != nil || len(recs) != 1 {
		t.Errorf("LookupIdempotency after reopening = (%d records, %v), want 1", len(recs), err)
	}
	if a, x, err := s.NextIDs(ctx); err != nil || a != 2 || x != 2 {
		t.Errorf("NextIDs after reopening = (%d, %d, %v), want (2, 2, nil)", a, x, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paybound.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, sqlite.SchemaVersion()+1); err != nil {
		t.Fatalf("couldn't write a newer schema version: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = sqlite.Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatalf("Open of a database with schema version %d (this binary knows %d) succeeded, want an error", sqlite.SchemaVersion()+1, sqlite.SchemaVersion())
	}
	if !strings.Contains(err.Error(), "newer paybound") {
		t.Errorf("Open of a database with a newer schema: error %q does not tell to run a newer paybound", err)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "paybound.db")
	s, err := sqlite.Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatalf("Open(%s) in a directory that doesn't exist succeeded, want an error", path)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("Open created the missing directory %s (stat: %v)", filepath.Dir(path), err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open in a missing directory fails with %q, which does not name the path %s", err, path)
	}
}

// TestLogAcrossReopen: a store reopened appends to the tree it left,
// reading the right edge back from the file's hash runs, and serves
// inclusion proofs of every entry and consistency proofs from every
// earlier size; a commit of 600 entries stores its hashes in several runs.
func TestLogAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paybound.db")
	var mem tlog.Memory
	var bodies [][]byte
	var olds []tlog.Checkpoint
	for round, n := range []int{1, 2, 5, 1, 8, 3, 16, 7, 600, 3} {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		b := &pb.Batch{}
		for i := range n {
			body := fmt.Appendf(nil, `{"round":%d,"i":%d}`, round, i)
			b.Log = append(b.Log, pb.LogRecord{Subject: "pay_x", Body: body})
			mem.Append(body)
			bodies = append(bodies, body)
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		size, root, err := s.LogState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := mem.Root(mem.Size()); size != mem.Size() || root != want {
			t.Fatalf("round %d: LogState = %d %x, want %d %x", round, size, root, mem.Size(), want)
		}
		c := tlog.Checkpoint{Origin: "test", Size: size, Hash: root}
		for i := range size {
			proof, err := tlog.ProveInclusion(i, size, ledger.StoredHashes(ctx, s))
			if err != nil {
				t.Fatalf("round %d: ProveInclusion(%d): %v", round, i, err)
			}
			if err := tlog.VerifyInclusion(bodies[i], i, proof, c); err != nil {
				t.Fatalf("round %d: entry %d: %v", round, i, err)
			}
		}
		for _, old := range olds {
			proof, err := tlog.ProveConsistency(old.Size, size, ledger.StoredHashes(ctx, s))
			if err != nil {
				t.Fatalf("round %d: ProveConsistency(%d, %d): %v", round, old.Size, size, err)
			}
			if err := tlog.VerifyConsistency(old, c, proof); err != nil {
				t.Fatalf("round %d: from size %d: %v", round, old.Size, err)
			}
		}
		olds = append(olds, c)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogBundlesMigration: a database written before the log's entries
// were bundled (schema 4: a row an entry) opens with every entry, subject,
// root and proof as before, bytes exactly as stored, and appends on to the
// same tree.
func TestLogBundlesMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 4)
	// Three commits stored as schema 4 did: a row an entry, the root on each
	// commit's last, the hashes above the leaves in log_hashes. Bodies and
	// subjects carry bytes that text would not keep.
	var mem tlog.Memory
	var recs []pb.LogRecord
	for c, n := range []int{3, 1, 5} { // size 9: the right edge has a leaf, read by hashing its entry
		for i := range n {
			r := pb.LogRecord{Subject: []string{"pay_ü", "mnd_b"}[i%2], Body: fmt.Appendf(nil, "{\"c\":%d,\"i\":%d}\x00\xff\n", c, i)}
			idx, _ := mem.Append(r.Body)
			var root any
			if i == n-1 {
				h, _ := mem.Root(mem.Size())
				root = h[:]
			}
			if _, err := db.Exec(`INSERT INTO log_entries (idx, subject, body, root) VALUES (?, ?, ?, ?)`, idx, r.Subject, r.Body, root); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	for id := range xtlog.StoredHashCount(mem.Size()) {
		if level, _ := tlog.SplitStoredHashIndex(id); level > 0 {
			h, _ := mem.ReadHashes([]int64{id})
			if _, err := db.Exec(`INSERT INTO log_hashes (id, hash) VALUES (?, ?)`, id, h[0][:]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	check := func() {
		t.Helper()
		size, root, err := s.LogState(ctx)
		if want, _ := mem.Root(mem.Size()); err != nil || size != mem.Size() || root != want {
			t.Fatalf("LogState = %d %x %v, want %d %x", size, root, err, mem.Size(), want)
		}
		got, err := s.LogEntries(ctx, 0, pb.MaxLogRead)
		if err != nil || len(got) != len(recs) {
			t.Fatalf("LogEntries: %d entries, %v; want %d", len(got), err, len(recs))
		}
		c := tlog.Checkpoint{Origin: "test", Size: size, Hash: root}
		for i, e := range got {
			if e.Index != int64(i) || e.Subject != recs[i].Subject || string(e.Body) != string(recs[i].Body) {
				t.Fatalf("entry %d = %d %q %q, want %q %q", i, e.Index, e.Subject, e.Body, recs[i].Subject, recs[i].Body)
			}
			proof, err := tlog.ProveInclusion(int64(i), size, ledger.StoredHashes(ctx, s))
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.VerifyInclusion(e.Body, int64(i), proof, c); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		mine, err := s.SubjectLog(ctx, "pay_ü", 100)
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for i, r := range recs {
			if r.Subject == "pay_ü" {
				want = append(want, int64(i))
			}
		}
		if len(mine) != len(want) {
			t.Fatalf("SubjectLog: %d entries, want %d", len(mine), len(want))
		}
		for i, e := range mine {
			if e.Index != want[i] || string(e.Body) != string(recs[want[i]].Body) {
				t.Fatalf("SubjectLog[%d] = %d %q, want %d", i, e.Index, e.Body, want[i])
			}
		}
	}
	check()
	old := tlog.Checkpoint{Origin: "test", Size: mem.Size()}
	old.Hash, _ = mem.Root(old.Size)
	more := []pb.LogRecord{{Subject: "pay_ü", Body: []byte(`{"after":1}`)}, {Subject: "pay_c", Body: []byte(`{"after":2}`)}}
	if err := s.Commit(ctx, &pb.Batch{LogPart: pb.LogPart{Log: more}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range more {
		mem.Append(r.Body)
	}
	recs = append(recs, more...)
	check()
	size, root, _ := s.LogState(ctx)
	proof, err := tlog.ProveConsistency(old.Size, size, ledger.StoredHashes(ctx, s))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyConsistency(old, tlog.Checkpoint{Origin: "test", Size: size, Hash: root}, proof); err != nil {
		t.Fatal(err)
	}
}

// databaseAt makes a database at path as a binary of schema version made
// it: migrations 1 to version applied, recorded in schema_version. The
// caller closes it.
func databaseAt(t *testing.T, path string, version int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_version (version INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(names) < version {
		t.Fatalf("migrations: %d, %v", len(names), err)
	}
	slices.Sort(names)
	for v, name := range names[:version] {
		body, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_version (version) VALUES (?)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	return db
}
