package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/storetest"
)

// serverURL is the test cluster (./test.sh starts one). Without it the
// tests skip, except in CI, where a missing cluster is a failure.
func serverURL(t *testing.T) string {
	u := os.Getenv("PAYBOUND_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PAYBOUND_TEST_POSTGRES_URL is not set; ./test.sh starts a PostgreSQL cluster and sets it")
		}
		t.Skip("PAYBOUND_TEST_POSTGRES_URL is not set; run ./test.sh for the PostgreSQL tests")
	}
	return u
}

// freshSchema creates an empty schema and returns a URL whose connections
// use it, so that every test has a database of its own.
func freshSchema(t *testing.T) string {
	base := serverURL(t)
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
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
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

func open(t *testing.T) pb.Store {
	s, err := postgres.Open(context.Background(), freshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	serverURL(t)
	storetest.Run(t, open)
}

func TestSchemaVersionCheck(t *testing.T) {
	u := freshSchema(t)
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
