package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	pb "github.com/paybound/paybound"
)

// MandateRequests is the agents' mandate requests table: the columns lists
// filter on, the version a shared store checks, and the whole request as
// JSON. A row written again replaces the stored one (the SQLite store,
// whose one writer has read it); the PostgreSQL store writes a decision
// with MandateRequestUpdate instead.
var MandateRequests = NewTable("mandate_requests", "id, user_id, agent_id, status, version, data, created_at",
	` ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version, data = excluded.data`)

// MandateRequestUpdate writes a request's decision over the version the
// writer read ($4 - 1): it divides by zero, failing the batch, when
// another process decided the request meanwhile. $1 id, $2 status, $3
// data, $4 the new version.
const MandateRequestUpdate = `WITH u AS (UPDATE mandate_requests SET status = $2, data = $3, version = $4 WHERE id = $1 AND version = $4 - 1 RETURNING 1)
	SELECT 1 / (SELECT COUNT(*) FROM u)`

// MandateRequestRow encodes a request as MandateRequests' columns.
func MandateRequestRow(d []any, x *pb.MandateRequest) ([]any, error) {
	data, err := json.Marshal(x)
	if err != nil {
		return d, fmt.Errorf("couldn't encode mandate request %s: %w", x.ID, err)
	}
	return append(d, x.ID, x.UserID, x.AgentID, x.Status, x.Version, string(data), x.CreatedAt.Unix()), nil
}

func scanMandateRequest(r Scanner) (*pb.MandateRequest, error) {
	var data string
	var version int64
	if err := r.Scan(&data, &version); err != nil {
		return nil, err
	}
	var m pb.MandateRequest
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return nil, fmt.Errorf("a mandate request is unreadable: %w", err)
	}
	m.Version = version
	return &m, nil
}

func (r Reads) MandateRequest(ctx context.Context, id string) (*pb.MandateRequest, error) {
	m, err := scanMandateRequest(r.DB.QueryRow(ctx, `SELECT data, version FROM mandate_requests WHERE id = $1`, id))
	return m, found(err, "mandate request", id)
}

func (r Reads) ListMandateRequests(ctx context.Context, f pb.MandateRequestFilter) ([]pb.MandateRequest, bool, error) {
	var w where
	if f.UserID != "" {
		w.add("user_id = ?", f.UserID)
	}
	if f.AgentID != "" {
		w.add("agent_id = ?", f.AgentID)
	}
	if f.Status != "" {
		w.add("status = ?", f.Status)
	}
	if f.StartingAfter != "" {
		w.add("id < ?", f.StartingAfter)
	}
	limit := pb.PageLimit(f.Limit)
	out, err := collect(ctx, r.DB, []pb.MandateRequest{}, scanMandateRequest, `SELECT data, version FROM mandate_requests`+w.page(limit), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read mandate requests: %w", err)
	}
	out, more := pb.Page(out, limit)
	return out, more, nil
}
