-- SQLite's 0028 forgets usage event IDs through the packs of their events
-- and drops the index billing_event_ids (seen_ms). PostgreSQL, whose
-- processes share the table, keeps the index and forgets by it. Nothing
-- changes here; the migration keeps the two dialects numbered alike.
SELECT 1;
