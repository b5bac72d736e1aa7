package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	pb "github.com/paybound/paybound"
)

// errUnavailable is what a caller learns when the database is out of reach:
// the server is down, the connection broke, or the server reached is a
// standby (during a failover, until the new primary is promoted). Nothing
// is wrong with the request, and a write's outcome may be unknown (the
// connection broke after it was sent), so the API answers 503 with
// Retry-After, and stores no idempotent answer: a retry with the same
// Idempotency-Key replays the write if it committed and runs it if not.
var errUnavailable = &pb.Error{Code: pb.ErrUnavailable,
	Message: "the database is unreachable (it may be failing over); retry with the same Idempotency-Key"}

// unavailable wraps err with errUnavailable when it means the database is
// out of reach, keeping err in the chain (conflict and the logs still see
// it); other errors are returned as they are.
func unavailable(err error) error {
	if err == nil || !outOfReach(err) {
		return err
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}

// outOfReach reports whether err means the database could not be reached or
// lost the connection, rather than that it refused the statement.
func outOfReach(err error) bool {
	if errors.Is(err, errUnavailable) {
		return false // marked already
	}
	var pg *pgconn.PgError
	var connect *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connect):
		// Includes a server that is up but read-only: a standby that
		// target_session_attrs=read-write refused.
		return true
	case errors.As(err, &pg):
		// Connection exceptions; the server shutting down or crashing, or
		// not accepting connections yet; and a read-only transaction, on a
		// standby or a primary being demoted.
		return strings.HasPrefix(pg.Code, "08") || pg.Code == "57P01" || pg.Code == "57P02" ||
			pg.Code == "57P03" || pg.Code == "25006"
	case pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true // not sent, or no answer in time
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.As(err, &netErr):
		return true // the connection broke
	}
	return false
}

// markedPool is the connection pool with every error that means the database is
// out of reach marked with errUnavailable, whichever Store method met it.
type markedPool struct{ *pgxpool.Pool }

func (p markedPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := p.Pool.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (p markedPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := p.Pool.Query(ctx, sql, args...)
	if err != nil {
		return rows, unavailable(err)
	}
	return markedRows{rows}, nil
}

func (p markedPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return markedRow{p.Pool.QueryRow(ctx, sql, args...)}
}

func (p markedPool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return markedBatch{p.Pool.SendBatch(ctx, b)}
}

func (p markedPool) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := p.Pool.Begin(ctx)
	if err != nil {
		return tx, unavailable(err)
	}
	return markedTx{tx}, nil
}

func (p markedPool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	tx, err := p.Pool.BeginTx(ctx, opts)
	if err != nil {
		return tx, unavailable(err)
	}
	return markedTx{tx}, nil
}

type markedRows struct{ pgx.Rows }

func (r markedRows) Err() error { return unavailable(r.Rows.Err()) }

type markedRow struct{ pgx.Row }

func (r markedRow) Scan(dest ...any) error { return unavailable(r.Row.Scan(dest...)) }

type markedBatch struct{ pgx.BatchResults }

func (b markedBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.BatchResults.Exec()
	return tag, unavailable(err)
}

func (b markedBatch) Query() (pgx.Rows, error) {
	rows, err := b.BatchResults.Query()
	if err != nil {
		return rows, unavailable(err)
	}
	return markedRows{rows}, nil
}

func (b markedBatch) QueryRow() pgx.Row { return markedRow{b.BatchResults.QueryRow()} }
func (b markedBatch) Close() error      { return unavailable(b.BatchResults.Close()) }

type markedTx struct{ pgx.Tx }

func (t markedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.Tx.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (t markedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		return rows, unavailable(err)
	}
	return markedRows{rows}, nil
}

func (t markedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return markedRow{t.Tx.QueryRow(ctx, sql, args...)}
}

func (t markedTx) Commit(ctx context.Context) error { return unavailable(t.Tx.Commit(ctx)) }
