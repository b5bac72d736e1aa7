-- Token Pay: what each usage line drew on the customer's overdraft (a
-- plan whose overage policy is "allow"), beside what the credit paid
-- (charged) and what nothing covered (uncollected); and the usage event
-- IDs remembered for the deduplication, apart from the lines: an ID is
-- forgotten once the deduplication window (and a margin) is over, when
-- the event would be refused as too late anyway, while its lines stay
-- for usage and invoices. A line is then keyed by its arrival second too,
-- since an ID may come back once forgotten.
ALTER TABLE billing_usage ADD COLUMN overdraft BIGINT NOT NULL DEFAULT 0;

CREATE TABLE billing_event_ids (
	provider_id TEXT   NOT NULL,
	event_id    TEXT   NOT NULL,
	seen_ms     BIGINT NOT NULL,
	PRIMARY KEY (provider_id, event_id)
);
-- The pruner forgets the oldest first.
CREATE INDEX billing_event_ids_seen ON billing_event_ids (seen_ms);
-- The IDs stored so far are remembered from now on (their lines did not
-- record their arrival).
INSERT INTO billing_event_ids (provider_id, event_id, seen_ms)
	SELECT DISTINCT provider_id, event_id, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT FROM billing_usage;

ALTER TABLE billing_usage DROP CONSTRAINT billing_usage_pkey;
ALTER TABLE billing_usage ADD PRIMARY KEY (provider_id, event_id, line, created_at);
