package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"sync"

	"github.com/jackc/pgx/v5"
)

// PostgresServer returns the test cluster's URL (PAYBOUND_TEST_POSTGRES_URL,
// set by ./test.sh). Without one the test is skipped, except under CI,
// where it fails: CI must run the PostgreSQL tests.
func PostgresServer(t T) string {
	t.Helper()
	u := os.Getenv("PAYBOUND_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PAYBOUND_TEST_POSTGRES_URL is not set; ./test.sh starts a PostgreSQL cluster and sets it")
		}
		t.Skip("PAYBOUND_TEST_POSTGRES_URL is not set; run ./test.sh for the PostgreSQL tests")
	}
	return u
}

// PostgresURL returns a URL whose connections use a new, empty schema of
// the test cluster, dropped when the test ends: a database of the test's own.
func PostgresURL(t T) string {
	base := PostgresServer(t)
	ctx := context.Background()
	var b [6]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("t_%x", b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// UsePostgres reports whether tests that can run on either store should
// use PostgreSQL (PAYBOUND_TEST_STORE=postgres); ./test.sh runs them both ways.
func UsePostgres() bool { return os.Getenv("PAYBOUND_TEST_STORE") == "postgres" }

var databases sync.Map // key → URL

// T is the part of testing.TB these helpers use; rapid's *T has it too.
type T interface {
	Helper()
	Fatal(args ...any)
	Skip(args ...any)
	Cleanup(func())
}

// Database returns the database for key in this test run: empty for
// SQLite (the caller's default), or a schema of the test cluster that stays
// the same for the same key, so that a restarted server finds its data.
func Database(t T, key string) string {
	if !UsePostgres() {
		return ""
	}
	if u, ok := databases.Load(key); ok {
		return u.(string)
	}
	u := PostgresURL(t)
	databases.Store(key, u)
	return u
}
