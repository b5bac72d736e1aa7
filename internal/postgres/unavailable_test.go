package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	pb "github.com/paybound/paybound"
)

// TestOutOfReach: errors that mean the database is out of reach become
// pb.ErrUnavailable (503, retry with the same key); errors that mean it
// refused the statement keep their meaning.
func TestOutOfReach(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"connect refused", &pgconn.ConnectError{}, true},
		{"connection lost", fmt.Errorf("couldn't commit: %w", io.ErrUnexpectedEOF), true},
		{"reset by peer", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{"postmaster died", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"read-only standby", &pgconn.PgError{Code: "25006"}, true},
		{"no answer in time", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"no_overdraft", &pgconn.PgError{Code: "23514"}, false},
		{"version moved", &pgconn.PgError{Code: "22012"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"no rows", pgx.ErrNoRows, false},
		{"caller gave up", context.Canceled, false},
		{"a bug", errors.New("cannot scan int8 into *string"), false},
	} {
		err := unavailable(c.err)
		if got := pb.ErrorCode(err) == pb.ErrUnavailable; got != c.want {
			t.Errorf("%s: code %s; want unavailable %v", c.name, pb.ErrorCode(err), c.want)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: the cause left the chain: %v", c.name, err)
		}
	}
	if unavailable(nil) != nil {
		t.Error("unavailable(nil) is not nil")
	}
	if err := unavailable(unavailable(io.EOF)); err.Error() != unavailable(io.EOF).Error() {
		t.Errorf("marked twice: %v", err)
	}
}
