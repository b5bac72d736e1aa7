// Package sqlstore is what Paybound's two SQL stores, internal/sqlite and
// internal/postgres, share: the tables' columns, a row's values as Commit
// writes them, its decoding when read back, and the reads whose SQL both
// dialects run alike (Reads). Each store keeps its own Commit, locking,
// connections and migrations, embeds Reads over its connections (DB), and
// implements the rest of pb.Store itself: what the dialects do differently.
//
// Queries are written once, with PostgreSQL's numbered placeholders ($1,
// $2, …), which modernc.org/sqlite binds by number too.
//
// # A new capability
//
// A capability that stores rows adds a file here, named after it, with its
// tables (Table), the encoding and decoding of their rows and its shared
// reads; in each store, a file of the same name with its part of Commit
// and whatever the dialect reads its own way; and one migration per
// dialect.
//
// Migrations are embedded files, migrations/NNNN_<name>.sql, applied in
// order, each in its own transaction; a database records how many it has
// applied (schema_version), and a store refuses a database that has
// applied more than it knows. So a capability's migration takes the next
// number, without a gap, in both directories, under the same name
// (0007_<capability>.sql in internal/sqlite/migrations and in
// internal/postgres/migrations), and a version means the same tables in
// both dialects. Migrations are history that deployed databases have
// applied: one is never edited, renumbered or removed once released, and a
// later change to a table is a migration of its own.
package sqlstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// Scanner is a row read back: *sql.Row, *sql.Rows, pgx.Row and pgx.Rows
// all are.
type Scanner interface{ Scan(dest ...any) error }

// DB is a store's connections, or one of its transactions, as the shared
// reads use them. Errors are the driver's, but for a missing row.
type DB interface {
	// QueryRow runs a query of at most one row; the row's Scan returns
	// ErrNoRows when there is none.
	QueryRow(ctx context.Context, query string, args ...any) Scanner
	// Query runs a query and calls each with every row, in order; an error
	// from each stops the query and is returned.
	Query(ctx context.Context, each func(Scanner) error, query string, args ...any) error
	// Exec runs a statement and returns how many rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Rows is a query's result as both drivers give it (but for Close, whose
// signatures differ).
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Each calls each with every row of rows, in order, as DB's Query does; an
// error from each stops it and is returned. The caller closes rows.
func Each(rows Rows, each func(Scanner) error) error {
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ErrNoRows is what a DB's row returns from Scan when the query found none.
var ErrNoRows = errors.New("no rows in result set")

// Reads implements the reads of pb.Store that both dialects run alike, a
// file per capability; a store embeds it over its pool. It is safe for
// concurrent use, as the pool is.
type Reads struct {
	DB DB
	// Parties says how a payer's or an agent's payments are found: through
	// the indexes payments (payer_id, id) and (agent_id, id) when false
	// (PostgreSQL), through payment_parties and the payments after its mark
	// when true (SQLite: see PartyQuery).
	Parties bool
}

// notFound is the error of a lookup that found nothing.
func notFound(what string, id any) error {
	return pb.Errorf(pb.ErrNotFound, "", "no such %s: %v", what, id)
}

// found returns err, or a notFound error when err is ErrNoRows.
func found(err error, what string, id any) error {
	if errors.Is(err, ErrNoRows) {
		return notFound(what, id)
	}
	return err
}

// collect appends to out each row of a query, decoded by scan.
func collect[T any](ctx context.Context, db DB, out []T, scan func(Scanner) (*T, error), query string, args ...any) ([]T, error) {
	err := db.Query(ctx, func(r Scanner) error {
		v, err := scan(r)
		if err == nil {
			out = append(out, *v)
		}
		return err
	}, query, args...)
	return out, err
}

// where builds a list's WHERE clause: conditions joined by AND, each
// with one argument, written ? and numbered as it is added.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, v any) {
	w.args = append(w.args, v)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(w.args))))
}

// page is the rest of a list's query: the WHERE clause and the order,
// newest (greatest ID) first, for one more row than limit (see pb.Page).
func (w *where) page(limit int) string {
	q := ""
	if len(w.conds) > 0 {
		q = " WHERE " + strings.Join(w.conds, " AND ")
	}
	return q + " ORDER BY id DESC LIMIT " + strconv.Itoa(limit+1)
}

// Table is a table that Commit writes rows into: its name, its columns in
// the order of a row's values, and Upsert, the ON CONFLICT clause of a row
// written again (empty: a row is only ever inserted).
type Table struct {
	Name, Cols, Upsert string
	N                  int // columns
	insert             string
}

// NewTable describes a table.
func NewTable(name, cols, upsert string) *Table {
	t := &Table{Name: name, Cols: cols, Upsert: upsert, N: strings.Count(cols, ",") + 1}
	ps := make([]string, t.N)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(i+1)
	}
	t.insert = "INSERT INTO " + name + " (" + cols + ") VALUES (" + strings.Join(ps, ", ") + ")" + upsert
	return t
}

// WithUpsert is t with another ON CONFLICT clause.
func (t *Table) WithUpsert(upsert string) *Table { return NewTable(t.Name, t.Cols, upsert) }

// Insert is the statement that writes one row, its values $1 to $N.
func (t *Table) Insert() string { return t.insert }

// Times are stored as Unix seconds (API times) or milliseconds (*_ms
// columns), NULL for a nil *time.Time.

// unix is a stored time in seconds, read back.
func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// unixOrNil stores t in seconds, NULL when nil.
func unixOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}

// unixPtr reads back a time that unixOrNil stored.
func unixPtr(sec *int64) *time.Time {
	if sec == nil {
		return nil
	}
	t := unix(*sec)
	return &t
}
