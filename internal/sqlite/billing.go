package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlstore"
)

// billingParts is what b writes of Token Pay as rows: each object
// replaced whole (this store's one writer read the version it changes),
// the usage events' packs inserted. Commit writes the event IDs
// (insertUsageEventIDs).
func billingParts(b *pb.Batch) []part {
	return []part{partOf(sqlstore.BillingObjects, b.BillingObjects, sqlstore.BillingObjectRow),
		partOf(sqlstore.BillingUsagePacks, sqlstore.UsagePacks(b.UsageLines), sqlstore.UsagePackArgs)}
}

// insertEventIDs is insertUsageEventIDs' statement.
const insertEventIDs = `INSERT OR FAIL INTO billing_event_ids (provider_id, event_id, seen_ms) SELECT $1, value, $2 FROM json_each($3)`

// insertUsageEventIDs writes a batch's usage event IDs: a statement for
// each run of one provider and arrival (an ingest's events share them),
// its IDs one JSON array. Bound as rows, three values an ID went through
// database/sql's conversions one by one.
func (s *Store) insertUsageEventIDs(ctx context.Context, ids []pb.UsageEventID) error {
	if len(ids) == 0 {
		return nil
	}
	hs := make([]uint64, len(ids))
	for i := range ids {
		hs[i] = idHash(ids[i].ProviderID, ids[i].EventID)
	}
	s.addToIDFilter(hs)
	st, err := s.writerStmt(ctx, insertEventIDs)
	if err != nil {
		return err
	}
	var list []byte
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j].ProviderID == ids[i].ProviderID && ids[j].SeenAt.Equal(ids[i].SeenAt) {
			j++
		}
		list = append(list[:0], '[')
		for k := i; k < j; k++ {
			if k > i {
				list = append(list, ',')
			}
			list = sqlstore.AppendJSONString(list, ids[k].EventID)
		}
		list = append(list, ']')
		if _, err := st.ExecContext(ctx, ids[i].ProviderID, ids[i].SeenAt.UnixMilli(), string(list)); err != nil {
			return fmt.Errorf("couldn't write billing_event_ids: %w", err)
		}
		i = j
	}
	return nil
}

// usageEventsSeen looks a batch's event IDs up given as one JSON array:
// one statement, prepared once, where a list of up to 1,000 placeholders
// is parsed and bound one by one each time (a tenth of an ingest's CPU).
// The CROSS JOIN keeps json_each the outer loop: a key search per ID
// (TestKeyLookupsUseTheirIndexes). As event_id IN (SELECT value FROM
// json_each(…)), SQLite first builds a temporary index of the list,
// about a quarter more per ID; as a plain join it may scan the provider's
// IDs instead.
const usageEventsSeen = `SELECT e.event_id FROM json_each($2) j CROSS JOIN billing_event_ids e ON e.provider_id = $1 AND e.event_id = j.value`

func (s *Store) UsageEventsSeen(ctx context.Context, provider string, ids []string) (map[string]bool, error) {
	ids = s.mayBeStored(provider, ids)
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

// DeleteUsageEventIDs forgets usage event IDs through the packs that hold
// their events (migration 0028: billing_event_ids has no index by time),
// in the order the packs came, from a mark (a pack's seq and how many of
// its events are done). A pack is due once its created_ms + 1 s is at or
// before cutoff (each of its IDs was seen before then); an ID of it is
// forgotten only if seen before cutoff (one that came back since is the
// newer event's, which its own pack forgets). A pack not yet due stops
// the walk, so none is passed over. At most limit IDs are looked at: fewer
// than limit may be forgotten while more are due.
func (s *Store) DeleteUsageEventIDs(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	type pack struct {
		seq, created int64
		provider     string
		data         []byte
	}
	var n int64
	err := s.inTx(ctx, func(db sqlstore.DB) error {
		var seq, done int64
		if err := db.QueryRow(ctx, `SELECT seq, done FROM billing_event_ids_forgotten`).Scan(&seq, &done); err != nil {
			return err
		}
		var packs []pack
		err := db.Query(ctx, func(r sqlstore.Scanner) error {
			var p pack
			err := r.Scan(&p.seq, &p.created, &p.provider, &p.data)
			packs = append(packs, p)
			return err
		}, `SELECT seq, created_ms, provider_id, data FROM billing_usage_packs WHERE seq >= $1 ORDER BY seq LIMIT 16`, seq)
		if err != nil {
			return err
		}
		looked := 0
		for _, p := range packs {
			if p.created+1000 > cutoff.UnixMilli() || looked >= limit {
				break
			}
			ids, err := sqlstore.PackEventIDs(p.data)
			if err != nil {
				return fmt.Errorf("usage pack %d: %w", p.seq, err)
			}
			if p.seq != seq {
				seq, done = p.seq, 0
			}
			take := ids[min(done, int64(len(ids))):]
			take = take[:min(len(take), limit-looked)]
			list, err := json.Marshal(take)
			if err != nil {
				return err
			}
			k, err := db.Exec(ctx, `DELETE FROM billing_event_ids WHERE provider_id = $1 AND event_id IN (SELECT value FROM json_each($2))
				AND seen_ms < $3`, p.provider, string(list), cutoff.UnixMilli())
			if err != nil {
				return err
			}
			n += k
			looked += len(take)
			if done += int64(len(take)); done >= int64(len(ids)) {
				seq, done = p.seq+1, 0
			}
		}
		_, err = db.Exec(ctx, `UPDATE billing_event_ids_forgotten SET seq = $1, done = $2`, seq, done)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("couldn't forget usage event IDs: %w", err)
	}
	return int(n), nil
}
