-- Token Pay: the usage event IDs remembered for the deduplication, apart
-- from the usage: an ID is forgotten once the deduplication window (and a
-- margin) is over, when the event would be refused as too late anyway,
-- while its usage stays for usage queries and invoices. The usage is then
-- a row per event (not per token type), its lines packed in one column
-- (name, quantity, price, charged, overdraft, uncollected: tab-separated,
-- a line a row of the text), now with what each line drew on the
-- customer's overdraft (a plan whose overage policy is "allow"); keyed by
-- what reads it (a customer's usage over time), which spares an index per
-- row written, and by the arrival second too, since an ID may come back
-- once forgotten.
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

CREATE TABLE billing_usage_0018 (
	provider_id    TEXT   NOT NULL,
	customer_id    TEXT   NOT NULL,
	time_ms        BIGINT NOT NULL,
	event_id       TEXT   NOT NULL,
	created_at     BIGINT NOT NULL,
	meter          TEXT   NOT NULL,
	model          TEXT   NOT NULL,
	reservation_id TEXT   NOT NULL,
	dims           TEXT   NOT NULL,
	lines          TEXT   NOT NULL,
	PRIMARY KEY (provider_id, customer_id, time_ms, event_id, created_at)
);
INSERT INTO billing_usage_0018 (provider_id, customer_id, time_ms, event_id, created_at, meter, model, reservation_id, dims, lines)
	SELECT provider_id, customer_id, time_ms, event_id, created_at, meter, model, reservation_id, dims,
		string_agg(line || E'\t' || quantity || E'\t' || price_id || E'\t' || charged || E'\t0\t' || uncollected, E'\n' ORDER BY line)
	FROM billing_usage GROUP BY provider_id, customer_id, time_ms, event_id, created_at, meter, model, reservation_id, dims;
DROP TABLE billing_usage;
ALTER TABLE billing_usage_0018 RENAME TO billing_usage;
ALTER INDEX billing_usage_0018_pkey RENAME TO billing_usage_pkey;
