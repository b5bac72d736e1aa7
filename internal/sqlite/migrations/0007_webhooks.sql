-- Webhooks (internal/webhooks): endpoints, the event outbox written with
-- the ledger's batches, one delivery per event and endpoint, and the log
-- of their attempts. Times ending in _ms are Unix milliseconds, the others
-- seconds.
CREATE TABLE webhook_endpoints (
	id                  TEXT PRIMARY KEY,
	owner_id            TEXT    NOT NULL,
	owner_role          TEXT    NOT NULL,
	url                 TEXT    NOT NULL,
	events              TEXT    NOT NULL, -- JSON array
	format              TEXT    NOT NULL,
	description         TEXT    NOT NULL,
	status              TEXT    NOT NULL,
	disabled_reason     TEXT    NOT NULL,
	secret              BLOB    NOT NULL, -- sealed
	previous_secret     BLOB,             -- sealed, until previous_expires_at
	previous_expires_at BIGINT,
	deleted             INTEGER NOT NULL,
	failing_since_ms    BIGINT,           -- kept by the delivery worker
	created_at          BIGINT  NOT NULL,
	updated_at          BIGINT  NOT NULL
);
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_id, id);

CREATE TABLE webhook_events (
	id          TEXT PRIMARY KEY,
	type        TEXT    NOT NULL,
	parties     TEXT    NOT NULL, -- JSON array
	endpoint_id TEXT    NOT NULL,
	object_kind TEXT    NOT NULL,
	object_id   TEXT    NOT NULL,
	object      TEXT    NOT NULL,
	acp         TEXT    NOT NULL,
	created_ms  BIGINT  NOT NULL,
	dispatched  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_events_pending ON webhook_events (id) WHERE dispatched = 0;

CREATE TABLE webhook_deliveries (
	id               TEXT PRIMARY KEY,
	event_id         TEXT    NOT NULL,
	event_type       TEXT    NOT NULL,
	endpoint_id      TEXT    NOT NULL,
	owner_id         TEXT    NOT NULL,
	status           TEXT    NOT NULL,
	attempts         INTEGER NOT NULL,
	next_attempt_ms  BIGINT  NOT NULL,
	claimed_until_ms BIGINT  NOT NULL DEFAULT 0,
	last_status_code INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT    NOT NULL DEFAULT '',
	last_duration_ms BIGINT  NOT NULL DEFAULT 0,
	delivered_ms     BIGINT,
	created_ms       BIGINT  NOT NULL,
	UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms, claimed_until_ms, endpoint_id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, next_attempt_ms) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
	delivery_id TEXT    NOT NULL,
	attempt     INTEGER NOT NULL,
	endpoint_id TEXT    NOT NULL,
	at_ms       BIGINT  NOT NULL,
	status_code INTEGER NOT NULL,
	error       TEXT    NOT NULL,
	duration_ms BIGINT  NOT NULL,
	PRIMARY KEY (delivery_id, attempt)
);
