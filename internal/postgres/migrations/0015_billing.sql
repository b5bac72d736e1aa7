-- Token Pay: its objects (meters, prices, grants, reservations, accruals)
-- as JSON, with the columns lookups filter on, the version every write
-- increments and when the sweep is due to expire the object; and the usage
-- events, a line per token type, keyed by the provider and the event's own
-- ID (the deduplication).
CREATE TABLE billing_objects (
	id          TEXT PRIMARY KEY,
	kind        TEXT   NOT NULL,
	provider_id TEXT   NOT NULL,
	customer_id TEXT   NOT NULL,
	version     BIGINT NOT NULL,
	data        TEXT   NOT NULL,
	due_at      BIGINT,
	created_at  BIGINT NOT NULL
);
CREATE INDEX billing_objects_owner ON billing_objects (provider_id, kind, customer_id);
-- The sweep finds reservations and grants whose expiry is due.
CREATE INDEX billing_objects_due ON billing_objects (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE billing_usage (
	provider_id    TEXT   NOT NULL,
	event_id       TEXT   NOT NULL,
	line           TEXT   NOT NULL,
	customer_id    TEXT   NOT NULL,
	meter          TEXT   NOT NULL,
	time_ms        BIGINT NOT NULL,
	model          TEXT   NOT NULL,
	quantity       BIGINT NOT NULL,
	price_id       TEXT   NOT NULL,
	charged        BIGINT NOT NULL,
	uncollected    BIGINT NOT NULL,
	reservation_id TEXT   NOT NULL,
	dims           TEXT   NOT NULL,
	created_at     BIGINT NOT NULL,
	PRIMARY KEY (provider_id, event_id, line)
);
CREATE INDEX billing_usage_customer ON billing_usage (provider_id, customer_id, time_ms);
