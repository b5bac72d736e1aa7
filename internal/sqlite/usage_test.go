package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/paybound/paybound/internal/storetest"
)

// TestUsagePacksMigration: the usage rows stored before packs (a row an
// event) read back the same after migration 0027, which makes each a pack
// of its own and drops the old table.
func TestUsagePacksMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	db := databaseAt(t, path, 26)
	for _, r := range storetest.LegacyUsageRows() {
		if _, err := db.Exec(storetest.LegacyUsageInsert, r...); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckLegacyUsage(t, open(t, path))
	var packs, old int
	if err := openRaw(t, path).QueryRow(`SELECT (SELECT COUNT(*) FROM billing_usage_packs),
		(SELECT COUNT(*) FROM sqlite_schema WHERE name = 'billing_usage')`).Scan(&packs, &old); err != nil {
		t.Fatal(err)
	}
	if packs != 3 || old != 0 {
		t.Fatalf("after the migration: %d packs (want 3), the old table %d times (want 0)", packs, old)
	}
}
