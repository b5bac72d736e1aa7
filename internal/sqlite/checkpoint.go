package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"os"
	"sync"
	"time"
)

// checkpointer copies committed WAL frames into the database file on a
// connection of its own, while the writer goes on committing.
//
// Why: SQLite's automatic checkpoint runs inside the COMMIT that crosses
// wal_autocheckpoint, so one batch in every few thousand waited for up to
// 64 MiB of pages to be copied and fsynced, and every request queued behind
// it: that was the tail of the request latency. A PASSIVE checkpoint on
// another connection takes no lock the writer needs. It cannot reset the
// WAL while frames keep arriving, so the writer's own automatic checkpoint
// stays as the bound on the WAL's size; by the time it runs, nearly every
// frame has already been copied and it only has the last few to do.
//
// A checkpoint copies each page once however many times the frames since
// the last one rewrote it, so checkpointing after every commit would write
// hot pages (index tails, busy accounts) into the file over and over. The
// checkpointer waits for a backlog of a quarter of the writer's bound
// (walBytes) in frames not yet copied, so the writer is left a quarter at
// most.
//
// Durability is unchanged: a commit is on disk when its WAL frames are
// (synchronous=FULL); checkpointing only moves them into the main file.
type checkpointer struct {
	shm  string        // the wal-index file, <db>-shm
	min  int64         // the backlog, in frames, that starts a checkpoint
	kick chan struct{} // a commit happened; cap 1, so kicks coalesce
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// checkpointGap is the least time between two background checkpoints, in
// case the backlog cannot be read.
const checkpointGap = 100 * time.Millisecond

// startCheckpointer starts the checkpointer of the database at path, which
// checkpoints once min frames are not yet copied.
func startCheckpointer(db *sql.DB, path string, min int) *checkpointer {
	c := &checkpointer{shm: path + "-shm", min: int64(min), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run(db)
	return c
}

// committed tells the checkpointer that the WAL grew. It never blocks.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run(db *sql.DB) {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		if n, ok := walBacklog(c.shm); ok && n < c.min {
			continue
		}
		// A failed checkpoint is harmless (the frames stay in the WAL and
		// the writer's automatic checkpoint remains), so errors are not
		// reported; a later commit tries again.
		_, _ = db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointGap):
		}
	}
}

// walBacklog reads how many WAL frames are not yet copied into the
// database file from the wal-index header at the start of the -shm file
// (https://sqlite.org/walformat.html: mxFrame at byte 16, nBackfill at
// byte 96, in the machine's byte order). It reads without SQLite's locks,
// so the answer may be a moment old: it only decides when to checkpoint.
func walBacklog(shm string) (int64, bool) {
	f, err := os.Open(shm)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var h [100]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, false
	}
	mx, backfilled := binary.NativeEndian.Uint32(h[16:]), binary.NativeEndian.Uint32(h[96:])
	if backfilled > mx {
		return 0, true // the WAL was just restarted
	}
	return int64(mx - backfilled), true
}

// close stops the checkpointer and waits for a checkpoint under way. It may
// be called more than once.
func (c *checkpointer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
