// Package postgres is Paybound's scale-out store: PostgreSQL through pgx,
// using only what Postgres-compatible distributed engines also accept
// (plain tables, B-tree and partial indexes, CHECK constraints; no
// triggers, stored procedures or advisory locks).
//
// A batch is written in one network round trip: every statement is sent
// as one pgx pipeline that the server runs as a single implicit
// transaction, so no row lock is held while a packet crosses the network.
// Account balances are changed by the batch's differences, not overwritten,
// so batches from several processes add up, and the no_overdraft constraint
// refuses one that would overdraw an account; payments are changed only
// from the version the writer read.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of pb.Store: the reads both
// stores share (sqlstore.Reads) over its pool, and a file per capability
// with its part of Commit and what PostgreSQL reads its own way.
type Store struct {
	sqlstore.Reads
	pool markedPool
}

// Open connects to the database at url (a postgres:// URL), brings its
// schema up to date, and refuses a schema newer than this binary.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the PostgreSQL URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("couldn't connect to PostgreSQL at %s: %w", redact(url), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("couldn't connect to PostgreSQL at %s: %w", redact(url), err)
	}
	s := &Store{pool: markedPool{pool}}
	s.Reads = sqlstore.Reads{DB: conn{s.pool}}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// redact drops the password from a URL for messages.
func redact(url string) string {
	if at := strings.LastIndex(url, "@"); at >= 0 {
		if scheme := strings.Index(url, "://"); scheme >= 0 && scheme < at {
			user := url[scheme+3 : at]
			if name, _, ok := strings.Cut(user, ":"); ok {
				return url[:scheme+3] + name + ":***" + url[at:]
			}
		}
	}
	return url
}

// SchemaVersion is the schema this binary writes.
func SchemaVersion() int {
	n, _ := fs.Glob(migrations, "migrations/*.sql")
	return len(n)
}

// migrate applies the missing migrations, each in its own transaction. When
// several processes start at once, one wins each migration and the others'
// transactions fail on the schema_version key; they then read the version
// again. Migrations are history: see package sqlstore for how a capability
// adds one.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)`); err != nil {
		var pg *pgconn.PgError
		// Two processes creating the table at once: one gets a unique violation.
		if !errors.As(err, &pg) || pg.Code != "23505" {
			return fmt.Errorf("couldn't create schema_version: %w", err)
		}
	}
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(names)
	for attempt := 0; ; attempt++ {
		var have int
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&have); err != nil {
			return fmt.Errorf("couldn't read schema version: %w", err)
		}
		if have > len(names) {
			return fmt.Errorf("the database schema is version %d but this paybound knows only up to %d: run a newer paybound", have, len(names))
		}
		if have == len(names) {
			return nil
		}
		body, err := migrations.ReadFile(names[have])
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, have+1); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, string(body))
			return err
		})
		if err != nil && attempt >= 3 {
			return fmt.Errorf("couldn't apply migration %s: %w", names[have], err)
		}
	}
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// conflict marks errors that mean another writer changed what this batch
// read: the no_overdraft or another CHECK constraint, a unique key (an
// account, a hold resolution, an idempotency key), or a payment version.
func conflict(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505", "23514", "22012", "40001", "40P01":
			return fmt.Errorf("%w: %v", pb.ErrStoreConflict, err)
		}
	}
	return err
}

// CommitTimeout bounds how long Commit waits for the server.
const CommitTimeout = 30 * time.Second

// Commit writes b as one pipeline, which the server runs as one implicit
// transaction: all of it or none of it, in one round trip. Each
// capability's file queues its part of the batch, in this order.
func (s *Store) Commit(ctx context.Context, b *pb.Batch) error {
	if len(b.AccountChanges) != len(b.Accounts) || len(b.UsageChanges) != len(b.Usage) {
		return errors.New("postgres: a batch needs one change per account and per usage row")
	}
	q := &pgx.Batch{}
	b.Fresh, b.FreshUsage = b.Fresh[:0], b.FreshUsage[:0]
	queueLedger(q, b)
	// The log's statements take the commit's number, which the payments'
	// statements read: they come first. (errors.Join's arguments run, and
	// so queue, in order.)
	onRow := paymentLogRanges(b)
	if err := errors.Join(queueLog(q, b, onRow), queuePayments(q, b, onRow), queueMandates(q, b),
		queueDisputes(q, b), queueAgentKeys(q, b), queueStepUp(q, b), queuePayLinks(q, b),
		queueCheckout(q, b), queueWebhooks(q, b), queueX402(q, b), queueBilling(q, b), queueMandateRequests(q, b)); err != nil {
		return err
	}
	queueIdempotency(q, b)
	if q.Len() == 0 {
		return nil
	}
	// Once sent, the batch is the server's to finish: canceling the wait
	// would only hide whether it committed. ctx is honoured up to here; a
	// server that does not answer within CommitTimeout fails the commit.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CommitTimeout)
	defer cancel()
	if err := s.pool.SendBatch(sendCtx, q).Close(); err != nil {
		b.Fresh, b.FreshUsage = nil, nil
		return fmt.Errorf("couldn't commit: %w", conflict(err))
	}
	return nil
}

// queueRows queues a statement per row of xs, which inserts it into t
// (or upserts it), encoded by enc: per row, because an upsert may not
// touch a row twice, and a batch may write one twice.
func queueRows[T any](q *pgx.Batch, t *sqlstore.Table, xs []T, enc func([]any, *T) ([]any, error)) error {
	for i := range xs {
		args, err := enc(nil, &xs[i])
		if err != nil {
			return err
		}
		q.Queue(t.Insert(), args...)
	}
	return nil
}

// ReserveIDs takes the next block of pb.IDBlock account and transfer IDs
// from the sequences.
func (s *Store) ReserveIDs(ctx context.Context) (account, transfer int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT nextval('account_ids'), nextval('transfer_ids')`).Scan(&account, &transfer)
	return account, transfer, err
}

// conn is the pool, or a transaction, as sqlstore.DB.
type conn struct {
	q interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	}
}

func (c conn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	return row{c.q.QueryRow(ctx, query, args...)}
}

func (c conn) Query(ctx context.Context, each func(sqlstore.Scanner) error, query string, args ...any) error {
	rows, err := c.q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return sqlstore.Each(rows, each)
}

func (c conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

// row reports a missing row as sqlstore.ErrNoRows.
type row struct{ pgx.Row }

func (r row) Scan(dest ...any) error {
	if err := r.Row.Scan(dest...); !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return sqlstore.ErrNoRows
}

var (
	_ pb.Store       = (*Store)(nil)
	_ pb.SharedStore = (*Store)(nil)
)
