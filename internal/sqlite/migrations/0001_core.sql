-- Core schema: ledger, identities, payments, idempotency.
-- Times are Unix seconds (API timestamps) or milliseconds (*_ms, ledger).
-- Payments are WITHOUT ROWID: their time-ordered IDs append to one B-tree.
-- Idempotency records keep a rowid table, so that their large bodies are
-- appended and only the small (caller, key) index takes scattered inserts.
CREATE TABLE accounts (
	id              INTEGER PRIMARY KEY,
	owner           TEXT    NOT NULL,
	currency        TEXT    NOT NULL,
	flags           INTEGER NOT NULL,
	debits_pending  INTEGER NOT NULL,
	debits_posted   INTEGER NOT NULL,
	credits_pending INTEGER NOT NULL,
	credits_posted  INTEGER NOT NULL,
	UNIQUE (owner, currency)
);

-- Transfers are immutable. pending_id links a post or void to its hold.
CREATE TABLE transfers (
	id                INTEGER PRIMARY KEY,
	kind              INTEGER NOT NULL,
	debit_account_id  INTEGER NOT NULL,
	credit_account_id INTEGER NOT NULL,
	amount            INTEGER NOT NULL,
	currency          TEXT    NOT NULL,
	pending_id        INTEGER,
	timeout_ms        INTEGER,
	ref               TEXT    NOT NULL,
	created_ms        INTEGER NOT NULL
);
CREATE UNIQUE INDEX transfers_pending ON transfers (pending_id) WHERE pending_id IS NOT NULL;

CREATE TABLE users (
	id         TEXT PRIMARY KEY,
	name       TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE merchants (
	id         TEXT PRIMARY KEY,
	name       TEXT    NOT NULL,
	category   TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE agents (
	id         TEXT PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	public_key TEXT    NOT NULL,
	keyid      TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX agents_user ON agents (user_id, id);

-- Only the SHA-256 of each API key is stored.
CREATE TABLE api_keys (
	hash         BLOB PRIMARY KEY,
	role         TEXT    NOT NULL,
	principal_id TEXT    NOT NULL,
	user_id      TEXT    NOT NULL,
	created_at   INTEGER NOT NULL
);

CREATE TABLE payments (
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
	assurance                TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX payments_payer ON payments (payer_id, id);
CREATE INDEX payments_merchant ON payments (merchant_id, id);
CREATE INDEX payments_agent ON payments (agent_id, id) WHERE agent_id != '';
CREATE INDEX payments_open_holds ON payments (authorization_expires_at) WHERE status = 'authorized';
CREATE INDEX payments_confirmation ON payments (confirmation_id) WHERE confirmation_id <> '';
CREATE INDEX payments_unconfirmed ON payments (confirmation_expires_at) WHERE status = 'requires_confirmation';

CREATE TABLE refunds (
	id         TEXT PRIMARY KEY,
	payment_id TEXT    NOT NULL,
	amount     INTEGER NOT NULL,
	currency   TEXT    NOT NULL,
	reason     TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, id);

CREATE TABLE topups (
	id         TEXT PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	amount     INTEGER NOT NULL,
	currency   TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE idempotency (
	caller       TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	request_hash BLOB    NOT NULL,
	status       INTEGER NOT NULL,
	body         BLOB    NOT NULL,
	created_ms   INTEGER NOT NULL,
	PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_age ON idempotency (created_ms);

-- A mandate's definition never changes after creation; only its revocation.
CREATE TABLE mandates (
	id         TEXT PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	agent_id   TEXT    NOT NULL,
	data       TEXT    NOT NULL,
	revoked_at INTEGER,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX mandates_user ON mandates (user_id, id);

-- What each mandate reserved per budget period, and (period '*') its
-- payments ever, with the caps the rows may never pass.
CREATE TABLE mandate_usage (
	mandate_id   TEXT    NOT NULL,
	period_key   TEXT    NOT NULL,
	spent        INTEGER NOT NULL,
	payments     INTEGER NOT NULL,
	cap_amount   INTEGER NOT NULL,
	cap_payments INTEGER NOT NULL,
	PRIMARY KEY (mandate_id, period_key),
	CHECK (spent >= 0 AND spent <= cap_amount),
	CHECK (cap_payments = 0 OR payments <= cap_payments)
) WITHOUT ROWID;

-- A user's one-time-code factor; the secret is sealed by the service.
CREATE TABLE user_totp (
	user_id    TEXT PRIMARY KEY,
	secret     BLOB    NOT NULL,
	active     INTEGER NOT NULL,
	last_step  INTEGER NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- A user's passkeys (WebAuthn credentials), as the verifier records them.
CREATE TABLE passkeys (
	id         BLOB    PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	credential BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
) WITHOUT ROWID;
CREATE INDEX passkeys_user ON passkeys (user_id);

-- Nonces of signed agent requests, kept for their signature's window, so
-- that a request replayed even after a restart is refused.
CREATE TABLE signature_nonces (
	keyid      TEXT    NOT NULL,
	nonce      TEXT    NOT NULL,
	expires_ms INTEGER NOT NULL,
	PRIMARY KEY (keyid, nonce)
);
CREATE INDEX signature_nonces_age ON signature_nonces (expires_ms);

-- An agent's signing keys: several may be valid at once while one is
-- rotated out (not_after), and a revoked one never signs again.
CREATE TABLE agent_keys (
	keyid      TEXT PRIMARY KEY,
	agent_id   TEXT   NOT NULL,
	public_key TEXT   NOT NULL,
	created_at INTEGER NOT NULL,
	not_after  INTEGER,
	revoked_at INTEGER
);
CREATE INDEX agent_keys_agent ON agent_keys (agent_id, keyid);
