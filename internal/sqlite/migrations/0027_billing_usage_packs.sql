-- Usage events are stored in packs: a row holds the events of one
-- provider's customer whose own times fall in one hour, as one batch
-- brought them (sqlstore.BillingUsagePacks). A row an event cost an ingest
-- about a third of its CPU. The rows stored so far become a pack each, of
-- one event, in the same JSON the store packs (sqlstore.UsagePackArgs),
-- left unpacked: the store reads both. A pack's created_ms is its event's
-- arrival, or when its ID was last seen if later (the IDs remembered by
-- 0018, one that came back): every ID is seen before created_ms + 1 s.
CREATE TABLE billing_usage_packs (
	seq         INTEGER PRIMARY KEY,
	provider_id TEXT    NOT NULL,
	customer_id TEXT    NOT NULL,
	hour_ms     INTEGER NOT NULL,
	created_ms  INTEGER NOT NULL,
	events      INTEGER NOT NULL,
	data        BLOB    NOT NULL
);
CREATE INDEX billing_usage_packs_customer ON billing_usage_packs (provider_id, customer_id, hour_ms);
INSERT INTO billing_usage_packs (provider_id, customer_id, hour_ms, created_ms, events, data)
	SELECT provider_id, customer_id, time_ms - time_ms % 3600000,
		MAX(created_at * 1000, COALESCE((SELECT seen_ms FROM billing_event_ids i WHERE i.provider_id = u.provider_id AND i.event_id = u.event_id), 0)), 1,
		json_array(json_array(event_id, time_ms, created_at, meter, model, reservation_id, json(dims), lines))
	FROM billing_usage u ORDER BY 4, time_ms, event_id;
DROP TABLE billing_usage;
