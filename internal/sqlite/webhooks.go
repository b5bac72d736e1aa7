package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// webhookParts is what b writes of webhooks: endpoints upserted, and the
// outbox's events with their objects snapshotted from the batch.
func webhookParts(b *pb.Batch) []part {
	if len(b.WebhookEvents) > 0 {
		if err := b.SnapshotWebhookObjects(); err != nil {
			return []part{{sqlstore.WebhookEvents, 1, func(d []any, _ int) ([]any, error) { return d, err }}}
		}
	}
	return []part{partOf(sqlstore.WebhookEndpoints, b.WebhookEndpoints, sqlstore.WebhookEndpointRow),
		partOf(sqlstore.WebhookEvents, b.WebhookEvents, sqlstore.WebhookEventRow)}
}

// DispatchWebhookEvents runs in a transaction of its own on the pool, not
// the writer's connection (see inTx).
func (s *Store) DispatchWebhookEvents(ctx context.Context, events []string, ds []pb.WebhookDelivery) (out []string, err error) {
	err = s.inTx(ctx, func(db sqlstore.DB) error {
		out, err = sqlstore.DispatchWebhookEvents(ctx, db, events, ds)
		return err
	})
	return out, err
}

func (s *Store) ClaimWebhookDeliveries(ctx context.Context, cs []pb.WebhookClaim, now, until time.Time) (out []pb.WebhookDelivery, err error) {
	err = s.inTx(ctx, func(db sqlstore.DB) error {
		out, err = sqlstore.ClaimWebhookDeliveries(ctx, db, cs, now, until)
		return err
	})
	return out, err
}

func (s *Store) RecordWebhookAttempts(ctx context.Context, as []pb.WebhookAttempt) error {
	return s.inTx(ctx, func(db sqlstore.DB) error { return sqlstore.RecordWebhookAttempts(ctx, db, as) })
}

// hookWriter is the webhooks' own write connection, with its prepared
// statements: their writers (fan-out, claims, the recorder) take turns on
// its mutex rather than through SQLite's busy handler, which sleeps up to
// 100ms between tries however soon the lock is free, and their statements
// are parsed once.
type hookWriter struct {
	mu    sync.Mutex
	c     *sql.Conn
	stmts map[string]*sql.Stmt
}

// maxHookStmts bounds the cached statements (multi-row statements differ
// by their row count).
const maxHookStmts = 512

func (h *hookWriter) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c != nil {
		h.c.Close()
		h.c, h.stmts = nil, nil
	}
}

// hookConn is the write connection as sqlstore.DB, inside a transaction.
type hookConn struct{ h *hookWriter }

func (c hookConn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := c.h.stmts[query]; st != nil {
		return st, nil
	}
	st, err := c.h.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if len(c.h.stmts) >= maxHookStmts {
		for q, old := range c.h.stmts {
			old.Close()
			delete(c.h.stmts, q)
		}
	}
	c.h.stmts[query] = st
	return st, nil
}

func (c hookConn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return row{st.QueryRowContext(ctx, args...)}
}

func (c hookConn) Query(ctx context.Context, each func(sqlstore.Scanner) error, query string, args ...any) error {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return sqlstore.Each(rows, each)
}

func (c hookConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// errRow is a row whose query could not be prepared.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// inTx runs fn in an IMMEDIATE transaction on the webhooks' write
// connection: it takes the write lock first (waiting for the ledger
// writer's commit through the busy timeout), so that it never fails to
// upgrade a read lock half-way.
//
// The connection commits with synchronous=NORMAL: in WAL mode a commit is
// not fsynced until the next checkpoint. This is delivery state only
// (claims, fan-out, attempts), where a power loss that forgets the last
// moments' changes only has those deliveries sent again, with the same
// webhook-id (at least once); it is what lets a disk that fsyncs slowly
// carry thousands of deliveries a second. The ledger's commits stay FULL.
func (s *Store) inTx(ctx context.Context, fn func(db sqlstore.DB) error) (err error) {
	h := &s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c == nil {
		c, err := s.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("couldn't get a connection: %w", err)
		}
		if _, err := c.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
			c.Close()
			return fmt.Errorf("couldn't configure the connection: %w", err)
		}
		h.c, h.stmts = c, map[string]*sql.Stmt{}
	}
	if _, err := h.c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		h.drop()
		return fmt.Errorf("couldn't begin: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := h.c.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
				err = fmt.Errorf("%w (and couldn't roll back: %v)", err, rerr)
				h.drop()
			}
		}
	}()
	if err := fn(hookConn{h}); err != nil {
		return err
	}
	if _, err := h.c.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	return nil
}

// drop closes a connection left in an unknown state; the next
// transaction opens another.
func (h *hookWriter) drop() {
	for _, st := range h.stmts {
		st.Close()
	}
	_ = h.c.Raw(func(any) error { return driver.ErrBadConn })
	h.c.Close()
	h.c, h.stmts = nil, nil
}
