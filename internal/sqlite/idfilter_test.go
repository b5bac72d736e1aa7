package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlite"
)

// commitIDs commits provider's event IDs prefix-0 … prefix-(n-1).
func commitIDs(t *testing.T, s *sqlite.Store, provider, prefix string, n int) []string {
	t.Helper()
	var b pb.Batch
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ids = append(ids, id)
		b.UsageEventIDs = append(b.UsageEventIDs, pb.UsageEventID{ProviderID: provider, EventID: id, SeenAt: time.Now().UTC().Truncate(time.Millisecond)})
	}
	if err := s.Commit(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkSeen fails t unless exactly want of ids are seen for provider.
func checkSeen(t *testing.T, s *sqlite.Store, provider string, ids []string, want map[string]bool) {
	t.Helper()
	seen, err := s.UsageEventsSeen(t.Context(), provider, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if seen[id] != want[id] {
			t.Fatalf("UsageEventsSeen(%s, %s) = %v, want %v", provider, id, seen[id], want[id])
		}
	}
}

// TestIDFilterSkipsNewIDs: once the filter is built, stored IDs are found
// (each looked up in the database), and new ones, of this provider or of
// another, are left out of the database's lookups but a few.
func TestIDFilterSkipsNewIDs(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "paybound.db"))
	sqlite.WaitIDFilter(s)
	stored := commitIDs(t, s, "mch_a", "old", 500)
	want := map[string]bool{}
	for _, id := range stored {
		want[id] = true
	}
	var fresh []string
	for i := range 5000 {
		fresh = append(fresh, fmt.Sprintf("new-%d", i))
	}
	before := sqlite.IDLookups(s)
	checkSeen(t, s, "mch_a", append(fresh, stored...), want)
	checkSeen(t, s, "mch_b", stored, nil)
	if n := sqlite.IDLookups(s) - before; n < 500 || n > 500+50 {
		t.Fatalf("%d IDs looked up in the database; want the 500 stored and at most 50 of the 5,500 others", n)
	}
	for _, id := range stored[:20] {
		checkSeen(t, s, "mch_a", []string{id}, want) // one ID: the point read
	}
}

// TestIDFilterBuildMissesNoCommit: a filter built while IDs are committed
// (one batch before the store reopens; one committed after the build's
// read of the table began, which that read does not see) holds both, and
// so do the filters built again as more IDs come than one was built for.
func TestIDFilterBuildMissesNoCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paybound.db")
	s := open(t, path)
	before := commitIDs(t, s, "mch_filter_test", "a", 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var during []string
	var fired atomic.Bool
	sqlite.SetIDFilterScanning(func(s *sqlite.Store) {
		// Only this test's store, and once.
		if seen, _ := s.UsageEventsSeen(context.Background(), "mch_filter_test", []string{"a-0"}); !seen["a-0"] || !fired.CompareAndSwap(false, true) {
			return
		}
		during = commitIDs(t, s, "mch_filter_test", "b", 50)
	})
	defer sqlite.SetIDFilterScanning(nil)
	old := sqlite.SetIDFilterMin(64)
	defer sqlite.SetIDFilterMin(old)
	s = open(t, path)
	sqlite.WaitIDFilter(s)
	if !fired.Load() {
		t.Fatal("the build's hook did not run")
	}
	want := map[string]bool{}
	all := append(append([]string{}, before...), during...)
	for _, id := range all {
		want[id] = true
	}
	checkSeen(t, s, "mch_filter_test", append(all, "c-0", "b-50"), want)

	// Past what it was built for (64, or twice the 50 stored), the filter is
	// built again, larger; no stored ID is missed on the way.
	for round := range 20 {
		ids := commitIDs(t, s, "mch_filter_test", fmt.Sprintf("r%d", round), 30)
		for _, id := range ids {
			want[id] = true
			all = append(all, id)
		}
		checkSeen(t, s, "mch_filter_test", all, want)
	}
	if capacity := sqlite.WaitIDFilter(s); capacity < int64(len(all)) {
		t.Fatalf("the filter is built for %d IDs; %d are stored", capacity, len(all))
	}
	checkSeen(t, s, "mch_filter_test", all, want)
}
