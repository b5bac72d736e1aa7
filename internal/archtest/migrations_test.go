package archtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A store's schema version is the count of its migrations applied, so the
// files must be numbered 0001 to N without a gap or a repeat (a branch that
// adds 0009 beside a missing 0007 would have databases skip 0007 later),
// and both dialects must have the same migrations, as a capability adds one
// to each.
func TestMigrationsNumberedAlike(t *testing.T) {
	names := map[string][]string{}
	for _, dialect := range []string{"sqlite", "postgres"} {
		files, err := filepath.Glob(filepath.Join("..", dialect, "migrations", "*.sql"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s's migrations: %v (none found)", dialect, err)
		}
		slices.Sort(files)
		for i, f := range files {
			base := filepath.Base(f)
			if want := fmt.Sprintf("%04d_", i+1); len(base) < 5 || base[:5] != want {
				t.Errorf("%s: migration %d is %s; it must start with %s (numbered from 0001, no gap or repeat)", dialect, i+1, base, want)
			}
			if b, err := os.ReadFile(f); err != nil || len(b) == 0 {
				t.Errorf("%s: %s is empty or unreadable: %v", dialect, base, err)
			}
			names[dialect] = append(names[dialect], base)
		}
	}
	if !slices.Equal(names["sqlite"], names["postgres"]) {
		t.Errorf("the dialects' migrations differ:\nsqlite   %v\npostgres %v", names["sqlite"], names["postgres"])
	}
}
