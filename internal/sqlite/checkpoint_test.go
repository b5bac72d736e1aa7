package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
)

// accounts is a batch of n accounts with long owners: a few hundred pages.
func accounts(from, n int) *pb.Batch {
	as := make([]pb.Account, n)
	for i := range as {
		as[i] = pb.Account{ID: int64(from + i), Owner: fmt.Sprintf("usr_%06d_%s", from+i, strings.Repeat("x", 40)), Currency: "USD", CreditsPosted: 1}
	}
	return &pb.Batch{LedgerPart: pb.LedgerPart{Accounts: as}}
}

// TestCheckpointsInBackground: once the WAL holds the threshold's frames
// not yet copied, they reach the database file without waiting for the
// writer's automatic checkpoint (64 MiB of WAL away); below the threshold
// they stay in the WAL.
func TestCheckpointsInBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paybound.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// The migrations' frames are the writer's to checkpoint: none of the
	// checkpointer's business until a commit.
	if _, err := s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	s.ckpt.min = 100
	before := size()
	if err := s.Commit(ctx, accounts(1, 100)); err != nil {
		t.Fatal(err)
	}
	if n, ok := walBacklog(s.ckpt.shm); !ok || n == 0 || n >= 100 {
		t.Fatalf("backlog after a small commit = %d, %v; want some frames, fewer than 100", n, ok)
	}
	time.Sleep(300 * time.Millisecond)
	if got := size(); got != before {
		t.Fatalf("the database file grew from %d to %d bytes with fewer frames than the threshold", before, got)
	}
	if err := s.Commit(ctx, accounts(101, 5000)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); size() <= before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			n, _ := walBacklog(s.ckpt.shm)
			t.Fatalf("the database file stayed at %d bytes for 10 s with %d frames not copied", before, n)
		}
	}
	if n, ok := walBacklog(s.ckpt.shm); !ok || n != 0 {
		t.Fatalf("backlog after the background checkpoint = %d, %v; want 0", n, ok)
	}
}

func TestWalBacklogUnreadable(t *testing.T) {
	if _, ok := walBacklog(filepath.Join(t.TempDir(), "missing-shm")); ok {
		t.Fatal("walBacklog of a missing file answered ok")
	}
}
