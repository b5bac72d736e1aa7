package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// billingParts is what b writes of Token Pay: each object replaced whole
// (this store's one writer read the version it changes), each event ID
// and usage event inserted.
func billingParts(b *pb.Batch) []part {
	return []part{partOf(sqlstore.BillingObjects, b.BillingObjects, sqlstore.BillingObjectRow),
		partOf(sqlstore.BillingEventIDs, b.UsageEventIDs, sqlstore.UsageEventIDRow),
		partOf(sqlstore.BillingUsagePacks, sqlstore.UsagePacks(b.UsageLines), sqlstore.UsagePackArgs)}
}

// usageEventsSeen looks a batch's event IDs up given as one JSON array:
// one statement, prepared once, where a list of up to 1,000 placeholders
// is parsed and bound one by one each time (a tenth of an ingest's CPU).
// Written as IN (subquery), the plan is a key lookup per ID; as a join,
// SQLite may scan the provider's IDs instead.
const usageEventsSeen = `SELECT event_id FROM billing_event_ids WHERE provider_id = $1 AND event_id IN (SELECT value FROM json_each($2))`

func (s *Store) UsageEventsSeen(ctx context.Context, provider string, ids []string) (map[string]bool, error) {
	if len(ids) <= 1 {
		return s.Reads.UsageEventsSeen(ctx, provider, ids)
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	st, err := s.prepared(ctx, usageEventsSeen)
	if err != nil {
		return nil, fmt.Errorf("couldn't look usage events up: %w", err)
	}
	rows, err := st.QueryContext(ctx, provider, string(list))
	if err != nil {
		return nil, fmt.Errorf("couldn't look usage events up: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("couldn't look usage events up: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}
