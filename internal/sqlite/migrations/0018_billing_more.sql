-- Token Pay: what each usage line drew on the customer's overdraft (a
-- plan whose overage policy is "allow"), beside what the credit paid
-- (charged) and what nothing covered (uncollected); and the usage event
-- IDs remembered for the deduplication, apart from the lines: an ID is
-- forgotten once the deduplication window (and a margin) is over, when
-- the event would be refused as too late anyway, while its lines stay
-- for usage and invoices. A line is then keyed by its arrival second too,
-- since an ID may come back once forgotten.
CREATE TABLE billing_event_ids (
	provider_id TEXT    NOT NULL,
	event_id    TEXT    NOT NULL,
	seen_ms     INTEGER NOT NULL,
	PRIMARY KEY (provider_id, event_id)
) WITHOUT ROWID;
-- The pruner forgets the oldest first.
CREATE INDEX billing_event_ids_seen ON billing_event_ids (seen_ms);
-- The IDs stored so far are remembered from now on (their lines did not
-- record their arrival).
INSERT INTO billing_event_ids (provider_id, event_id, seen_ms)
	SELECT DISTINCT provider_id, event_id, CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM billing_usage;

CREATE TABLE billing_usage_0018 (
	provider_id    TEXT    NOT NULL,
	event_id       TEXT    NOT NULL,
	line           TEXT    NOT NULL,
	customer_id    TEXT    NOT NULL,
	meter          TEXT    NOT NULL,
	time_ms        INTEGER NOT NULL,
	model          TEXT    NOT NULL,
	quantity       INTEGER NOT NULL,
	price_id       TEXT    NOT NULL,
	charged        INTEGER NOT NULL,
	uncollected    INTEGER NOT NULL,
	reservation_id TEXT    NOT NULL,
	dims           TEXT    NOT NULL,
	created_at     INTEGER NOT NULL,
	overdraft      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (provider_id, event_id, line, created_at)
) WITHOUT ROWID;
INSERT INTO billing_usage_0018 (provider_id, event_id, line, customer_id, meter, time_ms, model, quantity, price_id, charged,
		uncollected, reservation_id, dims, created_at)
	SELECT provider_id, event_id, line, customer_id, meter, time_ms, model, quantity, price_id, charged,
		uncollected, reservation_id, dims, created_at FROM billing_usage;
DROP TABLE billing_usage;
ALTER TABLE billing_usage_0018 RENAME TO billing_usage;
CREATE INDEX billing_usage_customer ON billing_usage (provider_id, customer_id, time_ms);
