package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
)

// The webhooks' tables. Endpoints are written by batches (upserted whole
// but for failing_since_ms, which the delivery worker keeps) and events
// by batches (inserted); deliveries and attempts only by the worker,
// directly, through the functions below.

var WebhookEndpoints = NewTable("webhook_endpoints",
	"id, owner_id, owner_role, url, events, format, description, status, disabled_reason, secret, previous_secret, previous_expires_at, deleted, created_at, updated_at",
	` ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events, description = excluded.description,
	status = excluded.status, disabled_reason = excluded.disabled_reason, secret = excluded.secret,
	previous_secret = excluded.previous_secret, previous_expires_at = excluded.previous_expires_at,
	deleted = excluded.deleted, updated_at = excluded.updated_at`)

var WebhookEvents = NewTable("webhook_events",
	"id, type, parties, endpoint_id, object_kind, object_id, object, acp, created_ms", "")

func WebhookEndpointRow(d []any, e *pb.WebhookEndpoint) ([]any, error) {
	events, err := json.Marshal(e.Events)
	if err != nil {
		return d, fmt.Errorf("couldn't encode the events of endpoint %s: %w", e.ID, err)
	}
	var prev any
	if e.PreviousSealed != nil {
		prev = e.PreviousSealed
	}
	return append(d, e.ID, e.OwnerID, string(e.OwnerRole), e.URL, string(events), e.Format, e.Description, e.Status,
		e.DisabledReason, e.SecretSealed, prev, unixOrNil(e.PreviousExpiresAt), boolInt(e.Deleted),
		e.CreatedAt.Unix(), e.UpdatedAt.Unix()), nil
}

func WebhookEventRow(d []any, e *pb.WebhookEvent) ([]any, error) {
	parties, err := json.Marshal(e.Parties)
	if err != nil {
		return d, fmt.Errorf("couldn't encode the parties of event %s: %w", e.ID, err)
	}
	return append(d, e.ID, e.Type, string(parties), e.EndpointID, e.ObjectKind, e.ObjectID, string(e.Object),
		string(e.ACP), e.CreatedAt.UnixMilli()), nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

const endpointCols = `id, owner_id, owner_role, url, events, format, description, status, disabled_reason, secret,
	previous_secret, previous_expires_at, deleted, failing_since_ms, created_at, updated_at`

func scanEndpoint(r Scanner) (*pb.WebhookEndpoint, error) {
	var e pb.WebhookEndpoint
	var role, events string
	var prevExp, failing *int64
	var deleted, created, updated int64
	if err := r.Scan(&e.ID, &e.OwnerID, &role, &e.URL, &events, &e.Format, &e.Description, &e.Status, &e.DisabledReason,
		&e.SecretSealed, &e.PreviousSealed, &prevExp, &deleted, &failing, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &e.Events); err != nil {
		return nil, fmt.Errorf("endpoint %s's events are unreadable: %w", e.ID, err)
	}
	e.Object, e.OwnerRole, e.Deleted = "webhook_endpoint", pb.Role(role), deleted != 0
	e.PreviousExpiresAt, e.CreatedAt, e.UpdatedAt = unixPtr(prevExp), unix(created), unix(updated)
	if failing != nil {
		t := time.UnixMilli(*failing).UTC()
		e.FailingSince = &t
	}
	if len(e.PreviousSealed) == 0 {
		e.PreviousSealed = nil
	}
	return &e, nil
}

func (r Reads) WebhookEndpoint(ctx context.Context, id string) (*pb.WebhookEndpoint, error) {
	e, err := scanEndpoint(r.DB.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1`, id))
	return e, found(err, "webhook endpoint", id)
}

func (r Reads) ListWebhookEndpoints(ctx context.Context, ownerID, startingAfter string, limit int) ([]pb.WebhookEndpoint, bool, error) {
	var w where
	w.add("owner_id = ?", ownerID)
	w.add("deleted = ?", 0)
	if startingAfter != "" {
		w.add("id < ?", startingAfter)
	}
	limit = pb.PageLimit(limit)
	out, err := collect(ctx, r.DB, []pb.WebhookEndpoint{}, scanEndpoint, `SELECT `+endpointCols+` FROM webhook_endpoints`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("couldn't list webhook endpoints: %w", err)
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (r Reads) ActiveWebhookEndpoints(ctx context.Context, limit int) ([]pb.WebhookEndpoint, error) {
	out, err := collect(ctx, r.DB, []pb.WebhookEndpoint{}, scanEndpoint,
		`SELECT `+endpointCols+` FROM webhook_endpoints WHERE deleted = 0 ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the webhook endpoints: %w", err)
	}
	return out, nil
}

const eventCols = `id, type, parties, endpoint_id, object_kind, object_id, object, acp, created_ms`

func scanEvent(r Scanner) (*pb.WebhookEvent, error) {
	var e pb.WebhookEvent
	var parties, object, acp string
	var created int64
	if err := r.Scan(&e.ID, &e.Type, &parties, &e.EndpointID, &e.ObjectKind, &e.ObjectID, &object, &acp, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(parties), &e.Parties); err != nil {
		return nil, fmt.Errorf("event %s's parties are unreadable: %w", e.ID, err)
	}
	if object != "" {
		e.Object = json.RawMessage(object)
	}
	if acp != "" {
		e.ACP = json.RawMessage(acp)
	}
	e.CreatedAt = time.UnixMilli(created).UTC()
	return &e, nil
}

func (r Reads) PendingWebhookEvents(ctx context.Context, limit int) ([]pb.WebhookEvent, error) {
	out, err := collect(ctx, r.DB, []pb.WebhookEvent{}, scanEvent,
		`SELECT `+eventCols+` FROM webhook_events WHERE dispatched = 0 ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the webhook outbox: %w", err)
	}
	return out, nil
}

func (r Reads) WebhookEvents(ctx context.Context, ids []string) ([]pb.WebhookEvent, error) {
	out := []pb.WebhookEvent{}
	for len(ids) > 0 {
		n := min(len(ids), 100)
		args := make([]any, n)
		for i := range n {
			args[i] = ids[i]
		}
		var err error
		out, err = collect(ctx, r.DB, out, scanEvent, `SELECT `+eventCols+` FROM webhook_events WHERE id IN (`+placeholders(1, n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("couldn't read webhook events: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}

// placeholders returns "$from, …, $(from+n-1)".
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

// deliveryInsertRows is how many deliveries one INSERT statement writes;
// attemptRows how many one UPDATE records.
const (
	deliveryInsertRows = 64
	attemptRows        = 64
)

// DispatchWebhookEvents marks the events not yet fanned out, then inserts
// the deliveries of those it marked, leaving any that exist for their
// event and endpoint; db is a transaction. The conditional UPDATE is what
// keeps two processes from both fanning out an event: the second waits
// for the first's row lock, then finds the event fanned out.
func DispatchWebhookEvents(ctx context.Context, db DB, events []string, ds []pb.WebhookDelivery) ([]string, error) {
	marked := map[string]bool{}
	var out []string
	for len(events) > 0 {
		n := min(len(events), 100)
		args := make([]any, n)
		for i := range n {
			args[i] = events[i]
		}
		err := db.Query(ctx, func(r Scanner) error {
			var id string
			if err := r.Scan(&id); err != nil {
				return err
			}
			marked[id] = true
			out = append(out, id)
			return nil
		}, `UPDATE webhook_events SET dispatched = 1 WHERE id IN (`+placeholders(1, n)+`) AND dispatched = 0 RETURNING id`, args...)
		if err != nil {
			return nil, fmt.Errorf("couldn't mark webhook events fanned out: %w", err)
		}
		events = events[n:]
	}
	ds = slices.DeleteFunc(slices.Clone(ds), func(d pb.WebhookDelivery) bool { return !marked[d.EventID] })
	const cols = 10
	for len(ds) > 0 {
		n := min(len(ds), deliveryInsertRows)
		var q strings.Builder
		q.WriteString(`INSERT INTO webhook_deliveries (id, event_id, event_type, endpoint_id, owner_id, status, attempts,
			next_attempt_ms, claimed_until_ms, created_ms) VALUES `)
		args := make([]any, 0, n*cols)
		for i, d := range ds[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(" + placeholders(i*cols+1, cols) + ")")
			var claimed int64
			if d.ClaimedUntil != nil {
				claimed = d.ClaimedUntil.UnixMilli()
			}
			args = append(args, d.ID, d.EventID, d.EventType, d.EndpointID, d.OwnerID, d.Status, int64(d.Attempts),
				d.NextAttemptAt.UnixMilli(), claimed, d.CreatedAt.UnixMilli())
		}
		q.WriteString(" ON CONFLICT (event_id, endpoint_id) DO NOTHING")
		if _, err := db.Exec(ctx, q.String(), args...); err != nil {
			return nil, fmt.Errorf("couldn't write webhook deliveries: %w", err)
		}
		ds = ds[n:]
	}
	return out, nil
}

func (r Reads) DueWebhookEndpoints(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var out []string
	err := r.DB.Query(ctx, func(row Scanner) error {
		var id string
		if err := row.Scan(&id); err != nil {
			return err
		}
		out = append(out, id)
		return nil
	}, `SELECT DISTINCT endpoint_id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= $1
		AND claimed_until_ms <= $1 LIMIT $2`, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't find due webhook deliveries: %w", err)
	}
	return out, nil
}

const deliveryCols = `id, event_id, event_type, endpoint_id, owner_id, status, attempts, next_attempt_ms, last_status_code,
	last_error, last_duration_ms, delivered_ms, created_ms`

func scanDelivery(r Scanner) (*pb.WebhookDelivery, error) {
	var d pb.WebhookDelivery
	var attempts, code int64
	var next, created int64
	var delivered *int64
	if err := r.Scan(&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.OwnerID, &d.Status, &attempts, &next, &code,
		&d.LastError, &d.LastDurationMS, &delivered, &created); err != nil {
		return nil, err
	}
	d.Object, d.Attempts, d.LastStatusCode = "webhook_delivery", int(attempts), int(code)
	if d.Status == pb.DeliveryPending {
		t := time.UnixMilli(next).UTC()
		d.NextAttemptAt = &t
	}
	if delivered != nil {
		t := time.UnixMilli(*delivered).UTC()
		d.DeliveredAt = &t
	}
	d.CreatedAt = time.UnixMilli(created).UTC()
	return &d, nil
}

// ClaimWebhookDeliveries claims cs; db is a transaction. Each claim is one
// conditional UPDATE: the subquery picks due rows, and the outer
// condition, evaluated again on the row as it is when written (PostgreSQL
// re-checks a row another transaction changed), keeps two callers from
// both claiming one.
func ClaimWebhookDeliveries(ctx context.Context, db DB, cs []pb.WebhookClaim, now, until time.Time) ([]pb.WebhookDelivery, error) {
	out := []pb.WebhookDelivery{}
	for _, c := range cs {
		var err error
		if out, err = claim(ctx, db, out, c.EndpointID, now, until, c.Limit); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func claim(ctx context.Context, db DB, out []pb.WebhookDelivery, endpointID string, now, until time.Time, limit int) ([]pb.WebhookDelivery, error) {
	out, err := collect(ctx, db, out, scanDelivery,
		`UPDATE webhook_deliveries SET claimed_until_ms = $1
		WHERE id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $2 AND status = 'pending'
			AND next_attempt_ms <= $3 AND claimed_until_ms <= $3 ORDER BY next_attempt_ms LIMIT $4)
		AND status = 'pending' AND claimed_until_ms <= $3
		RETURNING `+deliveryCols, until.UnixMilli(), endpointID, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't claim webhook deliveries: %w", err)
	}
	return out, nil
}

// RecordWebhookAttempts records attempts; db is a transaction. A first
// attempt that succeeded (most of them) writes no attempt row: the
// delivery's row holds its status, duration and time.
func RecordWebhookAttempts(ctx context.Context, db DB, as []pb.WebhookAttempt) error {
	// The deliveries: one UPDATE … FROM (VALUES …) per attemptRows, which
	// both dialects run (a VALUES list's columns are column1, column2, …).
	const cols = 8
	for rest := as; len(rest) > 0; {
		n := min(len(rest), attemptRows)
		var q strings.Builder
		q.WriteString(`UPDATE webhook_deliveries SET status = v.column2, attempts = v.column3, next_attempt_ms = v.column4,
			claimed_until_ms = 0, last_status_code = v.column5, last_error = v.column6, last_duration_ms = v.column7,
			delivered_ms = COALESCE(v.column8, webhook_deliveries.delivered_ms) FROM (VALUES `)
		args := make([]any, 0, n*cols)
		for i, a := range rest[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			p := func(k int) string { return "$" + strconv.Itoa(i*cols+k) }
			q.WriteString("(" + p(1) + ", " + p(2) + ", CAST(" + p(3) + " AS BIGINT), CAST(" + p(4) + " AS BIGINT), CAST(" + p(5) +
				" AS BIGINT), " + p(6) + ", CAST(" + p(7) + " AS BIGINT), CAST(" + p(8) + " AS BIGINT))")
			var next int64
			if a.NextAttemptAt != nil {
				next = a.NextAttemptAt.UnixMilli()
			}
			var delivered any
			if a.Status == pb.DeliverySucceeded {
				delivered = a.At.Add(time.Duration(a.DurationMS) * time.Millisecond).UnixMilli()
			}
			args = append(args, a.DeliveryID, a.Status, int64(a.Attempt), next, int64(a.StatusCode), a.Error, a.DurationMS, delivered)
		}
		q.WriteString(") AS v WHERE webhook_deliveries.id = v.column1")
		if _, err := db.Exec(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("couldn't record webhook deliveries: %w", err)
		}
		rest = rest[n:]
	}
	for _, a := range as {
		if a.Attempt == 1 && a.Status == pb.DeliverySucceeded {
			continue // the delivery's row says it all (WebhookDelivery)
		}
		if _, err := db.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, endpoint_id, at_ms, status_code, error, duration_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id, attempt) DO NOTHING`,
			a.DeliveryID, int64(a.Attempt), a.EndpointID, a.At.UnixMilli(), int64(a.StatusCode), a.Error, a.DurationMS); err != nil {
			return fmt.Errorf("couldn't record an attempt of webhook delivery %s: %w", a.DeliveryID, err)
		}
	}
	// One update per endpoint: its latest attempt decides.
	latest := map[string]pb.WebhookAttempt{}
	var order []string
	for _, a := range as {
		if _, ok := latest[a.EndpointID]; !ok {
			order = append(order, a.EndpointID)
		}
		if l, ok := latest[a.EndpointID]; !ok || !a.At.Before(l.At) {
			latest[a.EndpointID] = a
		}
	}
	for _, id := range order {
		a := latest[id]
		var err error
		if a.Status == pb.DeliverySucceeded {
			_, err = db.Exec(ctx, `UPDATE webhook_endpoints SET failing_since_ms = NULL WHERE id = $1 AND failing_since_ms IS NOT NULL`, id)
		} else {
			_, err = db.Exec(ctx, `UPDATE webhook_endpoints SET failing_since_ms = $2 WHERE id = $1 AND failing_since_ms IS NULL`, id, a.At.UnixMilli())
		}
		if err != nil {
			return fmt.Errorf("couldn't record the health of webhook endpoint %s: %w", id, err)
		}
	}
	return nil
}

func (r Reads) WebhookDelivery(ctx context.Context, id string) (*pb.WebhookDelivery, error) {
	d, err := scanDelivery(r.DB.QueryRow(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE id = $1`, id))
	if err != nil {
		return nil, found(err, "webhook delivery", id)
	}
	d.AttemptLog, err = collect(ctx, r.DB, []pb.WebhookAttempt{}, func(row Scanner) (*pb.WebhookAttempt, error) {
		var a pb.WebhookAttempt
		var attempt, code, at int64
		if err := row.Scan(&attempt, &at, &code, &a.Error, &a.DurationMS); err != nil {
			return nil, err
		}
		a.DeliveryID, a.EndpointID, a.Attempt, a.StatusCode, a.At = d.ID, d.EndpointID, int(attempt), int(code), time.UnixMilli(at).UTC()
		return &a, nil
	}, `SELECT attempt, at_ms, status_code, error, duration_ms FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt LIMIT $2`,
		id, pb.MaxListLimit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the attempts of webhook delivery %s: %w", id, err)
	}
	if len(d.AttemptLog) == 0 && d.Attempts == 1 && d.DeliveredAt != nil {
		// A first attempt that succeeded is kept on the row alone.
		d.AttemptLog = []pb.WebhookAttempt{{DeliveryID: d.ID, EndpointID: d.EndpointID, Attempt: 1, StatusCode: d.LastStatusCode,
			DurationMS: d.LastDurationMS, At: d.DeliveredAt.Add(-time.Duration(d.LastDurationMS) * time.Millisecond)}}
	}
	return d, nil
}

func (r Reads) ListWebhookDeliveries(ctx context.Context, endpointID, startingAfter string, limit int) ([]pb.WebhookDelivery, bool, error) {
	var w where
	w.add("endpoint_id = ?", endpointID)
	if startingAfter != "" {
		w.add("id < ?", startingAfter)
	}
	limit = pb.PageLimit(limit)
	out, err := collect(ctx, r.DB, []pb.WebhookDelivery{}, scanDelivery, `SELECT `+deliveryCols+` FROM webhook_deliveries`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("couldn't list webhook deliveries: %w", err)
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}

func (r Reads) RedeliverWebhook(ctx context.Context, id string, now time.Time) error {
	n, err := r.DB.Exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', next_attempt_ms = $2
		WHERE id = $1 AND status <> 'canceled' AND claimed_until_ms <= $2`, id, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("couldn't redeliver webhook delivery %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("webhook delivery %s is being attempted or was canceled: %w", id, pb.ErrStoreConflict)
	}
	return nil
}

// PruneWebhooks finds old rows without an index on their time: rows are
// stored in about the order they were made, so the oldest come first.
func (r Reads) PruneWebhooks(ctx context.Context, before time.Time, limit int) (int, error) {
	ms := before.UnixMilli()
	if _, err := r.DB.Exec(ctx, `DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries
		WHERE status <> 'pending' AND created_ms < $1 LIMIT $2)`, ms, limit); err != nil {
		return 0, fmt.Errorf("couldn't prune webhook attempts: %w", err)
	}
	n, err := r.DB.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries
		WHERE status <> 'pending' AND created_ms < $1 LIMIT $2)`, ms, limit)
	if err != nil {
		return 0, fmt.Errorf("couldn't prune webhook deliveries: %w", err)
	}
	m, err := r.DB.Exec(ctx, `DELETE FROM webhook_events WHERE id IN (SELECT e.id FROM webhook_events e
		WHERE e.dispatched = 1 AND e.created_ms < $1
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id) LIMIT $2)`, ms, limit)
	if err != nil {
		return 0, fmt.Errorf("couldn't prune webhook events: %w", err)
	}
	return int(n + m), nil
}

func (r Reads) CancelWebhookDeliveries(ctx context.Context, endpointID string) error {
	_, err := r.DB.Exec(ctx, `UPDATE webhook_deliveries SET status = 'canceled' WHERE endpoint_id = $1 AND status = 'pending'`, endpointID)
	if err != nil {
		return fmt.Errorf("couldn't cancel the deliveries of webhook endpoint %s: %w", endpointID, err)
	}
	return nil
}
