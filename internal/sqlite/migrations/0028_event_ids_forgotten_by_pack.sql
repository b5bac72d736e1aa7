-- Usage event IDs are forgotten through the packs that hold their events,
-- in the order the packs came, from a mark (seq, and how many of that
-- pack's events are done): the index billing_event_ids (seen_ms) cost
-- every ingested event a second entry. Each pack's IDs were all seen
-- before its created_ms + 1 s (0027).
DROP INDEX billing_event_ids_seen;
CREATE TABLE billing_event_ids_forgotten (
	seq  INTEGER NOT NULL,
	done INTEGER NOT NULL
);
INSERT INTO billing_event_ids_forgotten (seq, done) VALUES (0, 0);
