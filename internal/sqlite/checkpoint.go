package sqlite

import (
	"context"
	"database/sql"
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
// Durability is unchanged: a commit is on disk when its WAL frames are
// (synchronous=FULL); checkpointing only moves them into the main file.
type checkpointer struct {
	kick chan struct{} // a commit happened; cap 1, so kicks coalesce
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// checkpointEvery is the least time between two background checkpoints.
// Each copies a page once however many times the frames since the last one
// rewrote it, so checkpointing after every commit would write hot pages
// (index tails, busy accounts) into the file over and over.
const checkpointEvery = 200 * time.Millisecond

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
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
		// A failed checkpoint is harmless (the frames stay in the WAL and
		// the writer's automatic checkpoint remains), so errors are not
		// reported; the next commit tries again.
		_, _ = db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointEvery):
		}
	}
}

// close stops the checkpointer and waits for a checkpoint under way. It may
// be called more than once.
func (c *checkpointer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
