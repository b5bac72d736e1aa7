package sqlite

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

var tCodeFailures = sqlstore.NewTable("confirmation_failures", "confirmation_id, failures",
	` ON CONFLICT (confirmation_id) DO UPDATE SET failures = confirmation_failures.failures + excluded.failures`)

// stepUpParts is what b writes of step-up: TOTP factors, wrong codes (a
// row each, which the upsert adds up) and passkeys.
func stepUpParts(b *pb.Batch) []part {
	return []part{
		partOf(sqlstore.TOTP, b.TOTP, sqlstore.TOTPRow),
		partOf(tCodeFailures, b.CodeFailures, func(d []any, id *string) ([]any, error) { return append(d, *id, 1), nil }),
		partOf(sqlstore.Passkeys, b.Passkeys, sqlstore.PasskeyRow),
	}
}
