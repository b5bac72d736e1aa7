package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	xtlog "golang.org/x/mod/sumdb/tlog"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/storetest"
	"github.com/paybound/paybound/internal/tlog"
)

func open(t *testing.T) pb.Store {
	s, err := postgres.Open(context.Background(), storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.PostgresServer(t)
	storetest.Run(t, open)
}

func TestSchemaVersionCheck(t *testing.T) {
	u := storetest.PostgresURL(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if _, err := postgres.Open(ctx, u); err == nil || !strings.Contains(err.Error(), "newer paybound") {
		t.Fatalf("a newer schema was accepted: %v", err)
	}
}

func TestBadURL(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v: want a failure that does not show the password", err)
	}
}

// TestLogBundlesMigration: a database written before the log's entries
// were bundled (schema 4: a row an entry, placed or pending, and a row a
// stored hash) opens with every entry, subject, root and proof as before,
// bytes exactly as stored; its pending entries are placed after the
// others, and the tree grows on from there with consistency proofs.
func TestLogBundlesMigration(t *testing.T) {
	ctx := context.Background()
	u := storetest.PostgresURL(t)
	conn := databaseAt(t, u, 4)
	// Three integrations stored as schema 4 did, then two entries still
	// pending; the hashes, leaves included, in log_hashes. Bodies carry
	// bytes that text would not keep; a subject is not ASCII.
	var mem tlog.Memory
	var recs []pb.LogRecord
	insert := func(r pb.LogRecord, idx *int64) {
		t.Helper()
		if _, err := conn.Exec(ctx, `INSERT INTO log_entries (idx, subject, body) VALUES ($1, $2, $3)`, idx, r.Subject, r.Body); err != nil {
			t.Fatal(err)
		}
	}
	for c, n := range []int{3, 1, 5} { // size 9
		for i := range n {
			r := pb.LogRecord{Subject: []string{"pay_ü", "mnd_b"}[i%2], Body: fmt.Appendf(nil, "{\"c\":%d,\"i\":%d}\x00\xff\n", c, i)}
			idx, _ := mem.Append(r.Body)
			insert(r, &idx)
			recs = append(recs, r)
		}
	}
	pending := []pb.LogRecord{{Subject: "pay_ü", Body: []byte("{\"pending\":1}\x00")}, {Subject: "mnd_b", Body: []byte(`{"pending":2}`)}}
	for _, r := range pending {
		insert(r, nil)
	}
	for id := range xtlog.StoredHashCount(mem.Size()) {
		h, _ := mem.ReadHashes([]int64{id})
		if _, err := conn.Exec(ctx, `INSERT INTO log_hashes (id, hash) VALUES ($1, $2)`, id, h[0][:]); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := mem.Root(mem.Size())
	if _, err := conn.Exec(ctx, `UPDATE log_state SET size = $1, root = $2`, mem.Size(), root[:]); err != nil {
		t.Fatal(err)
	}

	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var olds []tlog.Checkpoint
	check := func() {
		t.Helper()
		storetest.CheckLog(t, s, recs)
		size, root, err := s.LogState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := tlog.Checkpoint{Origin: "test", Size: size, Hash: root}
		for _, old := range olds {
			proof, err := tlog.ProveConsistency(old.Size, size, ledger.StoredHashes(ctx, s))
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.VerifyConsistency(old, c, proof); err != nil {
				t.Fatalf("from size %d to %d: %v", old.Size, size, err)
			}
		}
		olds = append(olds, c)
	}
	check()
	got, err := s.PendingLog(ctx, 10)
	if err != nil || len(got) != len(pending) {
		t.Fatalf("PendingLog = %d entries, %v; want the %d pending before", len(got), err, len(pending))
	}
	for i, e := range got {
		if string(e.Body) != string(pending[i].Body) || (i > 0 && e.Seq <= got[i-1].Seq) {
			t.Fatalf("pending entry %d = %d %q, want %q in order", i, e.Seq, e.Body, pending[i].Body)
		}
	}
	// New entries are numbered after the old pending ones.
	more := []pb.LogRecord{{Subject: "pay_ü", Body: []byte(`{"after":1}`)}, {Subject: "pay_c", Body: []byte(`{"after":2}`)}}
	if err := s.Commit(ctx, &pb.Batch{LogPart: pb.LogPart{Log: more}}); err != nil {
		t.Fatal(err)
	}
	recs = append(append(recs, pending...), more...)
	// Placed one at a time, which splits the new bundle.
	for {
		n, _, err := ledger.IntegrateLog(ctx, s, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	check()
	s.Close()
	// Opened again, nothing is migrated twice.
	if s, err = postgres.Open(ctx, u); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check()
}

// TestUsagePacksMigration: the usage rows stored before packs (a row an
// event, schema 26) read back the same after migration 0027, which makes
// each a pack of its own and drops the old table.
func TestUsagePacksMigration(t *testing.T) {
	ctx := context.Background()
	u := storetest.PostgresURL(t)
	conn := databaseAt(t, u, 26)
	for _, r := range storetest.LegacyUsageRows() {
		if _, err := conn.Exec(ctx, storetest.LegacyUsageInsert, r...); err != nil {
			t.Fatal(err)
		}
	}
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckLegacyUsage(t, s)
	var packs int
	var old *string
	if err := conn.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM billing_usage_packs), to_regclass('billing_usage')::text`).Scan(&packs, &old); err != nil {
		t.Fatal(err)
	}
	if packs != 3 || old != nil {
		t.Fatalf("after the migration: %d packs (want 3), the old table %v (want none)", packs, old)
	}
}

// databaseAt brings the empty database at u to schema version (its first
// migrations, as the binary that shipped them did) and returns a
// connection to it, closed when t ends.
func databaseAt(t *testing.T, u string, version int) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_version (version INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(names) < version {
		t.Fatalf("%d migrations, %v; want at least %d", len(names), err, version)
	}
	for v, name := range names[:version] {
		body, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}
