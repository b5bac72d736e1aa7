-- Payments and checkout sessions become rowid tables. A WITHOUT ROWID
-- table is an index b-tree, which keeps at most about a quarter of a 4 KB
-- page of a row in the page: a payment (its risk input and decision) or a
-- session (its JSON) is over 1 KB, so each spilled onto an overflow page of
-- its own, 4 KB written to the WAL (and fsynced) for every row written,
-- three quarters of it empty. A rowid table keeps rows up to ~4 KB in its
-- leaves, several to a page, so a batch's new rows share pages; the id's
-- uniqueness moves to the table's automatic index. Same columns, same
-- indexes, same rows.
CREATE TABLE payments_0012 (
	id                       TEXT PRIMARY KEY,
	status                   TEXT    NOT NULL,
	amount                   INTEGER NOT NULL,
	amount_captured          INTEGER NOT NULL,
	amount_refunded          INTEGER NOT NULL,
	fee_amount               INTEGER NOT NULL,
	fee_refunded             INTEGER NOT NULL,
	currency                 TEXT    NOT NULL,
	merchant_id              TEXT    NOT NULL,
	payer_id                 TEXT    NOT NULL,
	agent_id                 TEXT    NOT NULL,
	mandate_id               TEXT    NOT NULL,
	description              TEXT    NOT NULL,
	capture_method           TEXT    NOT NULL,
	authorization_expires_at INTEGER,
	metadata                 TEXT    NOT NULL,
	decline_code             TEXT    NOT NULL,
	hold_id                  INTEGER NOT NULL,
	created_at               INTEGER NOT NULL,
	version                  INTEGER NOT NULL,
	confirmation_id          TEXT    NOT NULL,
	confirmation_expires_at  INTEGER,
	assurance                TEXT    NOT NULL,
	log_head                 BLOB,
	risk                     TEXT    NOT NULL DEFAULT '',
	risk_input               TEXT    NOT NULL DEFAULT '',
	log_idx                  BLOB
);
INSERT INTO payments_0012 (id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded,
	currency, merchant_id, payer_id, agent_id, mandate_id, description, capture_method,
	authorization_expires_at, metadata, decline_code, hold_id, created_at, version, confirmation_id,
	confirmation_expires_at, assurance, log_head, risk, risk_input, log_idx)
SELECT id, status, amount, amount_captured, amount_refunded, fee_amount, fee_refunded,
	currency, merchant_id, payer_id, agent_id, mandate_id, description, capture_method,
	authorization_expires_at, metadata, decline_code, hold_id, created_at, version, confirmation_id,
	confirmation_expires_at, assurance, log_head, risk, risk_input, log_idx
FROM payments ORDER BY id;
DROP TABLE payments;
ALTER TABLE payments_0012 RENAME TO payments;
CREATE INDEX payments_payer ON payments (payer_id, id);
CREATE INDEX payments_merchant ON payments (merchant_id, id);
CREATE INDEX payments_agent ON payments (agent_id, id) WHERE agent_id != '';
CREATE INDEX payments_open_holds ON payments (authorization_expires_at) WHERE status = 'authorized';
CREATE INDEX payments_confirmation ON payments (confirmation_id) WHERE confirmation_id <> '';
CREATE INDEX payments_unconfirmed ON payments (confirmation_expires_at) WHERE status = 'requires_confirmation';

CREATE TABLE checkout_sessions_0012 (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT    NOT NULL,
	agent_id    TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	data        TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	version     INTEGER NOT NULL DEFAULT 1
);
INSERT INTO checkout_sessions_0012 (id, merchant_id, agent_id, status, data, created_at, version)
SELECT id, merchant_id, agent_id, status, data, created_at, version FROM checkout_sessions ORDER BY id;
DROP TABLE checkout_sessions;
ALTER TABLE checkout_sessions_0012 RENAME TO checkout_sessions;
