package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
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
	// The file grows as soon as the checkpoint writes its first new page,
	// before it is done: wait for both the growth and an empty backlog.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, ok := walBacklog(s.ckpt.shm)
		if size() > before && ok && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the database file is %d bytes (%d before) with %d frames not copied (%v)", size(), before, n, ok)
		}
	}
}

func TestWalBacklogUnreadable(t *testing.T) {
	if _, ok := walBacklog(filepath.Join(t.TempDir(), "missing-shm")); ok {
		t.Fatal("walBacklog of a missing file answered ok")
	}
}

// TestPageSize: a new database gets pageSize pages and a WAL bound of
// walBytes; a database created with other pages (4 KiB, as before
// 2026-12-05) keeps them, with the same bound in bytes; a file that is not a database is
// refused, not overwritten.
func TestPageSize(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	check := func(path string, want int) {
		t.Helper()
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var size, frames int
		if err := s.w.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
			t.Fatal(err)
		}
		if err := s.w.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&frames); err != nil {
			t.Fatal(err)
		}
		if size != want || frames*size != walBytes || s.ckpt.min*int64(size) != walBytes/4 {
			t.Fatalf("%s: page size %d, autocheckpoint %d frames, checkpointer at %d; want %d-byte pages and a %d-byte WAL",
				path, size, frames, s.ckpt.min, want, walBytes)
		}
		if err := s.Commit(ctx, accounts(1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	fresh := filepath.Join(dir, "new.db")
	check(fresh, pageSize)
	check(fresh, pageSize) // reopened

	old := filepath.Join(dir, "old.db")
	db, err := sql.Open("sqlite", "file:"+old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	check(old, 4096)

	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("not a database, but long enough to have a header: "+strings.Repeat("x", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, junk); err == nil || !strings.Contains(err.Error(), "not a SQLite database") {
		t.Fatalf("Open(junk) = %v; want a clear refusal", err)
	}
	if b, _ := os.ReadFile(junk); !strings.HasPrefix(string(b), "not a database") {
		t.Fatal("Open changed a file that is not a database")
	}
}

// TestStatementCacheBounded: the pool caches at most maxPrepared texts of
// reads; past that, reads still answer, unprepared.
func TestStatementCacheBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "paybound.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := conn{q: s.db, s: s}
	for i := range maxPrepared + 50 {
		var got []int
		err := c.Query(ctx, func(r sqlstore.Scanner) error {
			var v int
			if err := r.Scan(&v); err != nil {
				return err
			}
			got = append(got, v)
			return nil
		}, fmt.Sprintf("SELECT %d + ? UNION ALL SELECT 1", i), 1)
		if err != nil || len(got) != 2 || got[0] != i+1 {
			t.Fatalf("query %d = %v, %v", i, got, err)
		}
		var v int
		if err := c.QueryRow(ctx, fmt.Sprintf("SELECT %d - ?", i), 1).Scan(&v); err != nil || v != i-1 {
			t.Fatalf("row %d = %d, %v", i, v, err)
		}
	}
	if n := s.nreads.Load(); n > maxPrepared+3 { // + the few fixed texts Open prepares
		t.Fatalf("%d statements cached; want at most about %d", n, maxPrepared)
	}
}
