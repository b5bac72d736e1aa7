-- Usage event IDs are forgotten through the packs that hold their events,
-- in the order the packs came, from a mark (seq, and how many of that
-- pack's events are done): the index billing_event_ids (seen_ms) cost
-- every ingested event a second entry. Each pack's IDs were all seen
-- before its created_ms + 1 s (0027).
-- The table is keyed by event ID first: an insert's key comparisons then
-- end at the ID, mostly at its first bytes, not after the provider's
-- (about a fifth of an insert, measured on 500,000 IDs). The table is
-- rebuilt so, which drops the index.
CREATE TABLE billing_event_ids_0028 (
	provider_id TEXT    NOT NULL,
	event_id    TEXT    NOT NULL,
	seen_ms     INTEGER NOT NULL,
	PRIMARY KEY (event_id, provider_id)
) WITHOUT ROWID;
INSERT INTO billing_event_ids_0028 (provider_id, event_id, seen_ms)
	SELECT provider_id, event_id, seen_ms FROM billing_event_ids ORDER BY event_id, provider_id;
DROP TABLE billing_event_ids;
ALTER TABLE billing_event_ids_0028 RENAME TO billing_event_ids;
CREATE TABLE billing_event_ids_forgotten (
	seq  INTEGER NOT NULL,
	done INTEGER NOT NULL
);
INSERT INTO billing_event_ids_forgotten (seq, done) VALUES (0, 0);
