package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// BillingObjects is Token Pay's objects table. A row written again
// replaces the stored one (the SQLite store, whose one writer read it); the
// PostgreSQL store writes changes with BillingObjectUpdate instead.
var BillingObjects = NewTable("billing_objects", "id, kind, provider_id, customer_id, version, data, due_at, created_at",
	` ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data, due_at = excluded.due_at`)

// BillingObjectUpdate changes an object from the version the writer read
// ($3 - 1): it divides by zero, failing the batch, when another process
// changed the object meanwhile. $1 id, $2 data, $3 the new version, $4 due_at.
const BillingObjectUpdate = `WITH u AS (UPDATE billing_objects SET data = $2, version = $3, due_at = $4 WHERE id = $1 AND version = $3 - 1 RETURNING 1)
	SELECT 1 / (SELECT COUNT(*) FROM u)`

// BillingEventIDs is the usage event IDs remembered for the
// deduplication, only ever inserted (and forgotten after the window): an
// ID stored twice is a unique-key violation.
var BillingEventIDs = NewTable("billing_event_ids", "provider_id, event_id, seen_ms", "")

// UsageEventIDRow encodes a remembered event ID as BillingEventIDs'
// columns.
func UsageEventIDRow(d []any, x *pb.UsageEventID) ([]any, error) {
	return append(d, x.ProviderID, x.EventID, x.SeenAt.UnixMilli()), nil
}

func (r Reads) DeleteUsageEventIDs(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n, err := r.DB.Exec(ctx, `DELETE FROM billing_event_ids WHERE (provider_id, event_id) IN
		(SELECT provider_id, event_id FROM billing_event_ids WHERE seen_ms < $1 ORDER BY seen_ms LIMIT $2)`, cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("couldn't forget usage event IDs: %w", err)
	}
	return int(n), nil
}

// BillingObjectRow encodes an object as BillingObjects' columns.
func BillingObjectRow(d []any, x *pb.BillingObject) ([]any, error) {
	return append(d, x.ID, x.Kind, x.ProviderID, x.CustomerID, x.Version, string(x.Data), unixOrNil(x.DueAt), x.CreatedAt.Unix()), nil
}

const billingObjectCols = `id, kind, provider_id, customer_id, version, data, due_at, created_at`

func scanBillingObject(r Scanner) (*pb.BillingObject, error) {
	var o pb.BillingObject
	var data string
	var created int64
	var due *int64
	if err := r.Scan(&o.ID, &o.Kind, &o.ProviderID, &o.CustomerID, &o.Version, &data, &due, &created); err != nil {
		return nil, err
	}
	o.Data, o.DueAt, o.CreatedAt = json.RawMessage(data), unixPtr(due), unix(created)
	return &o, nil
}

func (r Reads) BillingObject(ctx context.Context, id string) (*pb.BillingObject, error) {
	o, err := scanBillingObject(r.DB.QueryRow(ctx, `SELECT `+billingObjectCols+` FROM billing_objects WHERE id = $1`, id))
	return o, found(err, "billing object", id)
}

func (r Reads) BillingObjects(ctx context.Context, provider, customer, kind string, limit int) ([]pb.BillingObject, error) {
	var w where
	w.add("provider_id = ?", provider)
	w.add("kind = ?", kind)
	if customer != "" {
		w.add("customer_id = ?", customer)
	}
	q := `SELECT ` + billingObjectCols + ` FROM billing_objects WHERE ` + strings.Join(w.conds, " AND ") + ` ORDER BY created_at, id LIMIT ` + fmt.Sprint(limit+1)
	out, err := collect(ctx, r.DB, []pb.BillingObject{}, scanBillingObject, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read billing objects: %w", err)
	}
	return out, nil
}

func (r Reads) DueBillingObjects(ctx context.Context, now time.Time, limit int) ([]pb.BillingObject, error) {
	out, err := collect(ctx, r.DB, []pb.BillingObject{}, scanBillingObject, `SELECT `+billingObjectCols+
		` FROM billing_objects WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at, id LIMIT `+fmt.Sprint(limit), now.Unix())
	if err != nil {
		return nil, fmt.Errorf("couldn't read the billing objects due: %w", err)
	}
	return out, nil
}

func (r Reads) UsageEventsSeen(ctx context.Context, provider string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	if len(ids) == 1 {
		// One event (a settlement): a point read, whose statement the
		// store keeps prepared, where a list is parsed each time.
		var one int
		err := r.DB.QueryRow(ctx, `SELECT 1 FROM billing_event_ids WHERE provider_id = $1 AND event_id = $2`, provider, ids[0]).Scan(&one)
		switch {
		case err == nil:
			out[ids[0]] = true
		case !errors.Is(err, ErrNoRows):
			return nil, fmt.Errorf("couldn't look usage events up: %w", err)
		}
		return out, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, provider)
	var in strings.Builder
	for i, id := range ids {
		if i > 0 {
			in.WriteString(", ")
		}
		args = append(args, id)
		in.WriteString("$" + strconv.Itoa(i+2))
	}
	err := r.DB.Query(ctx, func(s Scanner) error {
		var id string
		err := s.Scan(&id)
		out[id] = true
		return err
	}, `SELECT event_id FROM billing_event_ids WHERE provider_id = $1 AND event_id IN (`+in.String()+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't look usage events up: %w", err)
	}
	return out, nil
}
