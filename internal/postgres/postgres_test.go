package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/storetest"
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
