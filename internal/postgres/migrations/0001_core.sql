-- Core schema for PostgreSQL and Postgres-compatible engines: ledger,
-- identities, payments, idempotency. Times are Unix seconds (API timestamps)
-- or milliseconds (*_ms), as in the SQLite store, so both read back alike.
-- Only plain tables, B-tree and partial indexes, sequences and CHECK
-- constraints: no triggers, no stored procedures, no extensions.

-- Each process takes account and transfer IDs in blocks of 1024 (IDBlock):
-- nextval gives the block's first ID.
CREATE SEQUENCE account_ids INCREMENT BY 1024 START WITH 1;
CREATE SEQUENCE transfer_ids INCREMENT BY 1024 START WITH 1;

-- The ledger's invariants are also the database's: a batch from any process
-- that would overdraw an account is refused by the constraint.
CREATE TABLE accounts (
	id              BIGINT PRIMARY KEY,
	owner           TEXT    NOT NULL,
	currency        TEXT    NOT NULL,
	flags           INTEGER NOT NULL,
	debits_pending  BIGINT  NOT NULL CHECK (debits_pending >= 0),
	debits_posted   BIGINT  NOT NULL CHECK (debits_posted >= 0),
	credits_pending BIGINT  NOT NULL CHECK (credits_pending >= 0),
	credits_posted  BIGINT  NOT NULL CHECK (credits_posted >= 0),
	UNIQUE (owner, currency),
	CONSTRAINT no_overdraft CHECK (flags & 1 = 0 OR debits_posted + debits_pending <= credits_posted)
);

CREATE TABLE transfers (
	id                BIGINT PRIMARY KEY,
	kind              SMALLINT NOT NULL,
	debit_account_id  BIGINT   NOT NULL,
	credit_account_id BIGINT   NOT NULL,
	amount            BIGINT   NOT NULL,
	currency          TEXT     NOT NULL,
	pending_id        BIGINT,
	timeout_ms        BIGINT,
	ref               TEXT     NOT NULL,
	created_ms        BIGINT   NOT NULL
);
-- A hold is posted or voided at most once, whichever process tries.
CREATE UNIQUE INDEX transfers_pending ON transfers (pending_id) WHERE pending_id IS NOT NULL;

CREATE TABLE users (
	id         TEXT PRIMARY KEY,
	name       TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE merchants (
	id         TEXT PRIMARY KEY,
	name       TEXT   NOT NULL,
	category   TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE agents (
	id         TEXT PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	name       TEXT   NOT NULL,
	public_key TEXT   NOT NULL,
	keyid      TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX agents_user ON agents (user_id, id);

CREATE TABLE api_keys (
	hash         BYTEA PRIMARY KEY,
	role         TEXT   NOT NULL,
	principal_id TEXT   NOT NULL,
	user_id      TEXT   NOT NULL,
	created_at   BIGINT NOT NULL
);

CREATE TABLE payments (
	id                       TEXT PRIMARY KEY,
	status                   TEXT   NOT NULL,
	amount                   BIGINT NOT NULL,
	amount_captured          BIGINT NOT NULL,
	amount_refunded          BIGINT NOT NULL,
	fee_amount               BIGINT NOT NULL,
	fee_refunded             BIGINT NOT NULL,
	currency                 TEXT   NOT NULL,
	merchant_id              TEXT   NOT NULL,
	payer_id                 TEXT   NOT NULL,
	agent_id                 TEXT   NOT NULL,
	mandate_id               TEXT   NOT NULL,
	description              TEXT   NOT NULL,
	capture_method           TEXT   NOT NULL,
	authorization_expires_at BIGINT,
	metadata                 TEXT   NOT NULL,
	decline_code             TEXT   NOT NULL,
	hold_id                  BIGINT NOT NULL,
	created_at               BIGINT NOT NULL,
	version                  BIGINT NOT NULL,
	confirmation_id          TEXT   NOT NULL,
	confirmation_expires_at  BIGINT,
	assurance                TEXT   NOT NULL,
	CHECK (0 <= amount_refunded AND amount_refunded <= amount_captured AND amount_captured <= amount)
);
CREATE INDEX payments_payer ON payments (payer_id, id);
CREATE INDEX payments_merchant ON payments (merchant_id, id);
CREATE INDEX payments_agent ON payments (agent_id, id) WHERE agent_id <> '';
CREATE INDEX payments_open_holds ON payments (authorization_expires_at) WHERE status = 'authorized';
CREATE INDEX payments_confirmation ON payments (confirmation_id) WHERE confirmation_id <> '';
CREATE INDEX payments_unconfirmed ON payments (confirmation_expires_at) WHERE status = 'requires_confirmation';

CREATE TABLE refunds (
	id         TEXT PRIMARY KEY,
	payment_id TEXT   NOT NULL,
	amount     BIGINT NOT NULL,
	currency   TEXT   NOT NULL,
	reason     TEXT   NOT NULL,
	status     TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, id);

CREATE TABLE topups (
	id         TEXT PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	amount     BIGINT NOT NULL,
	currency   TEXT   NOT NULL,
	status     TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE idempotency (
	caller       TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	request_hash BYTEA   NOT NULL,
	status       INTEGER NOT NULL,
	body         BYTEA   NOT NULL,
	created_ms   BIGINT  NOT NULL,
	PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_age ON idempotency (created_ms);

-- A mandate's definition never changes after creation; only its revocation.
CREATE TABLE mandates (
	id         TEXT PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	agent_id   TEXT   NOT NULL,
	data       TEXT   NOT NULL,
	revoked_at BIGINT,
	created_at BIGINT NOT NULL
);
CREATE INDEX mandates_user ON mandates (user_id, id);

-- What each mandate reserved per budget period, and (period '*') its
-- payments ever. The caps are constraints, so that no process can reserve
-- past a budget whatever its cache says.
CREATE TABLE mandate_usage (
	mandate_id   TEXT   NOT NULL,
	period_key   TEXT   NOT NULL,
	spent        BIGINT NOT NULL,
	payments     BIGINT NOT NULL,
	cap_amount   BIGINT NOT NULL,
	cap_payments BIGINT NOT NULL,
	PRIMARY KEY (mandate_id, period_key),
	CONSTRAINT within_budget CHECK (spent >= 0 AND spent <= cap_amount),
	CONSTRAINT within_payments CHECK (cap_payments = 0 OR payments <= cap_payments)
);

-- A user's one-time-code factor; the secret is sealed by the service.
CREATE TABLE user_totp (
	user_id    TEXT PRIMARY KEY,
	secret     BYTEA   NOT NULL,
	active     BOOLEAN NOT NULL,
	last_step  BIGINT  NOT NULL,
	created_at BIGINT  NOT NULL
);

-- A user's passkeys (WebAuthn credentials), as the verifier records them.
CREATE TABLE passkeys (
	id         BYTEA  PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	credential BYTEA  NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- Nonces of signed agent requests, kept for their signature's window, so
-- that a request replayed even after a restart, or to another process, is
-- refused.
CREATE TABLE signature_nonces (
	keyid      TEXT   NOT NULL,
	nonce      TEXT   NOT NULL,
	expires_ms BIGINT NOT NULL,
	PRIMARY KEY (keyid, nonce)
);
CREATE INDEX signature_nonces_age ON signature_nonces (expires_ms);

-- An agent's signing keys: several may be valid at once while one is
-- rotated out (not_after), and a revoked one never signs again.
CREATE TABLE agent_keys (
	keyid      TEXT PRIMARY KEY,
	agent_id   TEXT   NOT NULL,
	public_key TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	not_after  BIGINT,
	revoked_at BIGINT
);
CREATE INDEX agent_keys_agent ON agent_keys (agent_id, keyid);
