// Package sqlite is Paybound's embedded store: one SQLite database file in
// WAL mode with synchronous=FULL, so a commit is on disk before Commit
// returns. It is the default and needs no set-up.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of pb.Store: the reads both stores
// share (sqlstore.Reads) over its pool, and a file per capability with its
// part of Commit and what SQLite reads its own way.
type Store struct {
	sqlstore.Reads
	db *sql.DB // readers, and the writer's dedicated connection
	w  *sql.Conn
	// stmts caches the writer's multi-row statements by table and rows,
	// wstmts its other statements by their text (Commit only).
	stmts  map[stmtKey]*sql.Stmt
	wstmts map[string]*sql.Stmt
	// reads caches statements prepared on the pool, by query text: the
	// point reads of the request path are parsed once per connection.
	reads  sync.Map
	nreads atomic.Int64 // statements in reads
	log    logTree      // the writer's view of the log's tree (Commit only)
	hooks  hookWriter   // the webhooks' write connection (webhooks.go)
	ckpt   *checkpointer
	// encodings are those PrepareCommit began, oldest first.
	prepMu    sync.Mutex
	encodings []encoding
	// unmerged counts the payments written since payment_parties was last
	// filled (Commit only), which it is once mergeEvery are (payments.go).
	unmerged, mergeEvery int
	// nonces are those not yet in signature_nonces, or just moved there
	// (agents.go); moveNoncesAt is how many it moves at once.
	nonces       recentNonces
	moveNoncesAt int
	// idf filters the usage event ID lookups (idfilter.go).
	idf idFilters
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date. It refuses a database whose schema is newer than this binary.
func Open(ctx context.Context, path string) (*Store, error) {
	psize, err := create(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open SQLite database %s: %w", path, err)
	}
	walFrames := walBytes / psize
	q := url.Values{}
	// The WAL is checkpointed at walBytes (64 MiB) instead of SQLite's
	// 1000 pages, so that each hot page (index tails, busy accounts)
	// reaches the database file once per checkpoint rather than again and
	// again; most of that copying happens in the background
	// (checkpoint.go). journal_size_limit trims the WAL back after.
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(OFF)",
		"cache_size(-65536)", fmt.Sprintf("wal_autocheckpoint(%d)", walFrames), fmt.Sprintf("journal_size_limit(%d)", walBytes)} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("couldn't open SQLite database %s: %w", path, err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxLifetime(0)
	s := &Store{db: db, stmts: map[stmtKey]*sql.Stmt{}, wstmts: map[string]*sql.Stmt{}, mergeEvery: mergeEvery, moveNoncesAt: moveNoncesEvery}
	s.Reads = sqlstore.Reads{DB: conn{q: db, s: s}, Parties: true}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open SQLite database %s: %w", path, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT (SELECT COALESCE(MAX(rowid), 0) FROM payments) - upto FROM payment_parties_upto`).Scan(&s.unmerged); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open SQLite database %s: reading payment_parties_upto: %w", path, err)
	}
	if err := s.loadNonces(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open SQLite database %s: reading signature_nonces_new: %w", path, err)
	}
	if s.w, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open the writer connection: %w", err)
	}
	// The writer's upserts run in statement journals, which SQLite spills to
	// a temporary file past 64 KiB: a write and a seek per page touched,
	// about a tenth of a commit's CPU. In memory, a journal is bounded by
	// the pages one multi-row statement touches (see chunks). Readers keep
	// the default, so that a large sort spills to disk.
	if _, err := s.w.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
		s.w.Close()
		db.Close()
		return nil, fmt.Errorf("couldn't configure the writer connection: %w", err)
	}
	s.ckpt = startCheckpointer(db, path, walFrames/4)
	s.startIDFilter()
	return s, nil
}

// pageSize is the page size of a database this binary creates.
//
// Measured, not assumed: a commit writes every page it dirtied whole into
// the WAL, and on the payment path most dirtied pages are the tails of
// tables and indexes that a batch appends to, and leaves that one key out
// of time order lands in, so smaller pages write fewer bytes. Smaller
// pages also cost CPU (two write calls per WAL frame, deeper B-trees). In
// paired runs (scripts/abbench.sh, 5 pairs, --process; docs/architecture.md,
// "Bytes per payment") 2 KiB pages wrote 0.81x the bytes of 4 KiB pages a
// payment (8.1 KB), 0.89x signed, at 1.06x and 0.98x the payments/s and
// 0.93x and 1.04x the server CPU a payment: the same speed, within the
// noise of a shared machine. 1 KiB pages wrote 0.72x the bytes of 4 KiB
// at 0.85x the payments/s (2026-12-05).
//
// SQLite fixes the page size when a database is created (WAL mode cannot
// change it): Open keeps whatever page size a database has, so databases
// created before this binary keep their 4 KiB pages.
const pageSize = 2048

// walBytes bounds the WAL: the writer checkpoints when it holds this
// much, and trims it back to this size after.
const walBytes = 64 << 20

// create creates the database at path with pageSize pages when it does
// not exist (or is empty), and returns its page size. A database's page
// size is set before anything else writes to it: the _pragma list of a
// DSN runs in alphabetical order, journal_mode (which writes the header)
// before page_size, hence a connection of its own.
func create(ctx context.Context, path string) (int, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return readPageSize(path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d; PRAGMA journal_mode = WAL", pageSize)); err != nil {
		return 0, fmt.Errorf("couldn't create the database: %w", err)
	}
	return pageSize, nil
}

// readPageSize reads a database's page size from its file header
// (https://sqlite.org/fileformat.html: 2 bytes big-endian at offset 16,
// where 1 means 65536).
func readPageSize(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("%s is not a SQLite database: its header is short", path)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return 0, fmt.Errorf("%s is not a SQLite database", path)
	}
	n := int(binary.BigEndian.Uint16(h[16:]))
	if n == 1 {
		n = 65536
	}
	if n < 512 || n&(n-1) != 0 {
		return 0, fmt.Errorf("%s has an invalid page size %d", path, n)
	}
	return n, nil
}

// SchemaVersion is the schema this binary writes.
func SchemaVersion() int {
	n, _ := fs.Glob(migrations, "migrations/*.sql")
	return len(n)
}

// migrate applies the migrations the database lacks, each in its own
// transaction. They are history: see package sqlstore for how a
// capability adds one.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("couldn't create schema_version: %w", err)
	}
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&have); err != nil {
		return fmt.Errorf("couldn't read schema version: %w", err)
	}
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(names)
	if have > len(names) {
		return fmt.Errorf("the database schema is version %d but this paybound knows only up to %d: run a newer paybound", have, len(names))
	}
	for i := have; i < len(names); i++ {
		body, err := migrations.ReadFile(names[i])
		if err != nil {
			return err
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("couldn't start migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("couldn't apply migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, i+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("couldn't record migration %s: %w", names[i], err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("couldn't commit migration %s: %w", names[i], err)
		}
	}
	return nil
}

// part is what a batch writes to one table: n rows, row i's values
// appended to dst by args.
type part struct {
	t    *sqlstore.Table
	n    int
	args func(dst []any, i int) ([]any, error)
}

// partOf is the part of table t that xs are, each encoded by enc.
func partOf[T any](t *sqlstore.Table, xs []T, enc func([]any, *T) ([]any, error)) part {
	return part{t, len(xs), func(d []any, i int) ([]any, error) { return enc(d, &xs[i]) }}
}

// Commit writes b in one IMMEDIATE transaction; with synchronous=FULL the
// WAL is fsynced before Commit returns. Each capability's file gives its
// parts of the batch; the log's entries come last (log.go).
func (s *Store) Commit(ctx context.Context, b *pb.Batch) (err error) {
	// The writer's connection runs its transaction with plain BEGIN/COMMIT:
	// database/sql re-prepares connection-bound statements inside a sql.Tx,
	// which would parse every statement of every batch again.
	// BEGIN, COMMIT and ROLLBACK run without ctx's cancellation: the driver
	// reports a canceled context even for a statement that completed, which
	// would leave the connection inside a transaction, or call a written
	// batch failed. ctx is checked before COMMIT instead.
	// The webhooks' writes take turns with this one on a mutex, not
	// through SQLite's busy handler, which sleeps (webhooks.go).
	// Encoding that needs nothing from the database runs beside the
	// writer's inserts (bundle.go).
	enc := s.takePrepared(b)
	packing, bodies, risks := enc.packing, enc.bodies, enc.risks
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("couldn't begin: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := s.w.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("couldn't roll back: %w", rerr))
			}
			// Whether or not the batch reached the file, the log's tree is read
			// again from it before the next batch.
			s.log = logTree{}
		}
	}()
	x402, signed := splitNonces(b.Nonces)
	if err := s.checkNonces(ctx, signed); err != nil {
		return err
	}
	if len(b.Log) > 0 {
		if err := s.loadLog(ctx); err != nil {
			return err
		}
	}
	// The payments' new entries, listed on their rows, and which those are.
	logIdx, onRow := paymentEntries(s.log.size, b)
	for _, p := range slices.Concat(ledgerParts(b), paymentParts(b, logIdx, bodies, risks), mandateParts(b), stepUpParts(b),
		agentParts(b, x402, signed), disputeParts(b), payLinkParts(b), checkoutParts(b), webhookParts(b), x402Parts(b),
		billingParts(b), mandateRequestParts(b)) {
		if p.n > 0 {
			if err := s.insert(ctx, p); err != nil {
				return err
			}
		}
	}
	if err := s.insertUsageEventIDs(ctx, b.UsageEventIDs); err != nil {
		return err
	}
	added := newPayments(b)
	merge := s.unmerged+added >= s.mergeEvery
	if merge {
		if err := s.mergeParties(ctx); err != nil {
			return err
		}
	}
	// Not in the commit that fills payment_parties, which is long already:
	// the next commit moves them (the tail holds a batch more).
	move := !merge && len(signed) > 0 && s.nonces.size()+len(signed) >= s.moveNoncesAt
	if move {
		if err := s.moveNonces(ctx); err != nil {
			return err
		}
	}
	app, err := s.appendLog(ctx, b.Log, packing, onRow)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	s.unmerged += added
	if merge {
		s.unmerged = 0
	}
	if len(signed) > 0 {
		s.nonces.committed(signed, move)
	}
	s.log.applied(app)
	s.ckpt.committed()
	return nil
}

type stmtKey struct {
	t    *sqlstore.Table
	rows int
}

// chunks are the row counts of the multi-row statements: a batch of n rows
// is written greedily with the largest that fit, so a batch costs a few
// statements instead of one per row.
var chunks = []int{64, 16, 4, 1}

// insert writes p's rows.
func (s *Store) insert(ctx context.Context, p part) error {
	t, n := p.t, p.n
	buf := make([]any, 0, min(n, chunks[0])*t.N)
	for i := 0; i < n; {
		rows := 1
		for _, c := range chunks {
			if n-i >= c {
				rows = c
				break
			}
		}
		st, err := s.stmt(ctx, t, rows)
		if err != nil {
			return err
		}
		buf = buf[:0]
		for j := i; j < i+rows; j++ {
			if buf, err = p.args(buf, j); err != nil {
				return err
			}
		}
		if _, err := st.ExecContext(ctx, buf...); err != nil {
			return fmt.Errorf("couldn't write %s: %w", t.Name, err)
		}
		i += rows
	}
	return nil
}

func (s *Store) stmt(ctx context.Context, t *sqlstore.Table, rows int) (*sql.Stmt, error) {
	k := stmtKey{t, rows}
	if st := s.stmts[k]; st != nil {
		return st, nil
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", t.N), ",") + ")"
	// OR FAIL: a failed statement leaves the rows it wrote, which spares
	// SQLite a statement journal for plain inserts; Commit rolls the whole
	// transaction back on any error anyway. (An upsert's DO UPDATE still
	// journals.)
	q := "INSERT OR FAIL INTO " + t.Name + " (" + t.Cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", rows), ",") + t.Upsert
	st, err := s.w.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("couldn't prepare the %s insert: %w", t.Name, err)
	}
	s.stmts[k] = st
	return st, nil
}

// writerStmt returns the writer's prepared statement of query, one of
// this package's fixed texts.
func (s *Store) writerStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := s.wstmts[query]; st != nil {
		return st, nil
	}
	st, err := s.w.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("couldn't prepare a statement of the writer: %w", err)
	}
	s.wstmts[query] = st
	return st, nil
}

// row runs a single-row query through a cached prepared statement.
func (s *Store) row(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.cached(ctx, query)
	if err != nil {
		return s.db.QueryRowContext(ctx, query, args...) // reports err on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

// maxPrepared bounds the pool's cached statements: a list's text varies
// with its filters and limit, so the texts are many though finite.
const maxPrepared = 512

// errNotCached is prepared's answer for a new text once the cache is full:
// the caller runs the query unprepared.
var errNotCached = errors.New("sqlite: the statement cache is full")

// prepared returns the pool's cached prepared statement for query, one of
// this package's fixed texts.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	return s.prepare(ctx, query, false)
}

// cached returns the pool's cached prepared statement for query, a text
// of sqlstore's, or errNotCached once maxPrepared texts are.
func (s *Store) cached(ctx context.Context, query string) (*sql.Stmt, error) {
	return s.prepare(ctx, query, true)
}

func (s *Store) prepare(ctx context.Context, query string, bounded bool) (*sql.Stmt, error) {
	if st, ok := s.reads.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	if bounded && s.nreads.Load() >= maxPrepared {
		return nil, errNotCached
	}
	p, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.reads.LoadOrStore(query, p); loaded {
		p.Close()
		return prev.(*sql.Stmt), nil
	}
	s.nreads.Add(1)
	return p, nil
}

// conn is the pool, or a transaction, as sqlstore.DB. The pool's reads run
// through its cached prepared statements (Store.prepared), parsed once.
type conn struct {
	q interface {
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	}
	s *Store // set for the pool
}

func (c conn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	if c.s != nil {
		return row{c.s.row(ctx, query, args...)}
	}
	return row{c.q.QueryRowContext(ctx, query, args...)}
}

func (c conn) Query(ctx context.Context, each func(sqlstore.Scanner) error, query string, args ...any) error {
	var rows *sql.Rows
	var err error
	if c.s != nil {
		// the pool's statements, prepared once (a list of an agent's keys
		// is read on every delegated payment)
		var st *sql.Stmt
		if st, err = c.s.cached(ctx, query); err == nil {
			rows, err = st.QueryContext(ctx, args...)
		} else if errors.Is(err, errNotCached) {
			rows, err = c.q.QueryContext(ctx, query, args...)
		}
	} else {
		rows, err = c.q.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	return sqlstore.Each(rows, each)
}

func (c conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// row reports a missing row as sqlstore.ErrNoRows.
type row struct{ *sql.Row }

func (r row) Scan(dest ...any) error {
	if err := r.Row.Scan(dest...); !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return sqlstore.ErrNoRows
}

// Close closes the database.
func (s *Store) Close() error {
	s.closeIDFilter()
	if s.ckpt != nil {
		s.ckpt.close()
	}
	if s.w != nil {
		s.w.Close()
	}
	s.hooks.close()
	return s.db.Close()
}

var _ pb.Store = (*Store)(nil)
