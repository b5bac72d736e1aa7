package sqlite_test

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// TestVaultTokensMigration: a database of schema 19 (vault tokens in a
// WITHOUT ROWID table, idempotency records indexed by age) opens with its
// tokens as they were, replaces one when it is used, and sweeps old
// idempotency records without the age index, which is gone.
func TestVaultTokensMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 19)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	toks := []pb.VaultToken{
		{ID: "vt_1", CardID: "card_1", MandateID: "mdt_1", AgentID: "agt_1", UserID: "usr_1", MerchantID: "mch_1", CheckoutSessionID: "cs_1",
			MaxAmount: 600, Currency: "USD", ExpiresAt: t0.Add(time.Hour), Metadata: map[string]string{"k": "v"}, CreatedAt: t0},
		{ID: "vt_2", CardID: "card_1", MandateID: "mdt_1", AgentID: "agt_1", UserID: "usr_1", MerchantID: "mch_1", CheckoutSessionID: "cs_2",
			MaxAmount: 900, Currency: "USD", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, UsedBy: "pay_1"},
	}
	for _, tk := range toks {
		data, _ := json.Marshal(tk)
		if _, err := db.Exec(`INSERT INTO vault_tokens (id, checkout_session_id, agent_id, data, created_at) VALUES (?, ?, ?, ?, ?)`,
			tk.ID, tk.CheckoutSessionID, tk.AgentID, string(data), tk.CreatedAt.Unix()); err != nil {
			t.Fatal(err)
		}
	}
	for i, at := range []time.Time{t0.Add(-48 * time.Hour), t0} {
		if _, err := db.Exec(`INSERT INTO idempotency (caller, key, request_hash, status, body, created_ms) VALUES ('usr_1', ?, x'00', 200, x'', ?)`,
			[]string{"old", "new"}[i], at.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	ctx := t.Context()
	for _, want := range toks {
		got, err := s.VaultToken(ctx, want.ID)
		if err != nil || got.ID != want.ID || got.CheckoutSessionID != want.CheckoutSessionID || got.MaxAmount != want.MaxAmount || got.UsedBy != want.UsedBy || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("VaultToken(%s) after the migration = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
	if n, err := s.CountVaultTokens(ctx, "cs_2"); err != nil || n != 1 {
		t.Fatalf("CountVaultTokens(cs_2) = %d, %v", n, err)
	}
	used := toks[0]
	used.UsedBy = "pay_2"
	if err := s.Commit(ctx, &pb.Batch{CheckoutPart: pb.CheckoutPart{VaultTokens: []pb.VaultToken{used}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.VaultToken(ctx, "vt_1"); err != nil || got.UsedBy != "pay_2" {
		t.Fatalf("vt_1 used: %+v, %v", got, err)
	}
	if n, err := s.DeleteIdempotency(ctx, t0.Add(-time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("DeleteIdempotency = %d, %v; want the old record", n, err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var idx int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE name = 'idempotency_age'`).Scan(&idx); err != nil || idx != 0 {
		t.Fatalf("idempotency_age: %d %v", idx, err)
	}
	var without string
	if err := raw.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'vault_tokens'`).Scan(&without); err != nil || strings.Contains(without, "WITHOUT ROWID") {
		t.Fatalf("vault_tokens: %s %v", without, err)
	}
}
