-- The checkout (ACP): products, checkout sessions, agent cards, vault
-- tokens, each the whole row as JSON plus the columns lookups filter on.
CREATE TABLE products (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT    NOT NULL,
	active      BOOLEAN NOT NULL,
	data        TEXT    NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX products_merchant ON products (merchant_id, id);

CREATE TABLE checkout_sessions (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT    NOT NULL,
	agent_id    TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	data        TEXT    NOT NULL,
	created_at  BIGINT NOT NULL
);

-- An agent card's number is kept only as its keyed hash.
CREATE TABLE agent_cards (
	id          TEXT PRIMARY KEY,
	number_hash TEXT    NOT NULL UNIQUE,
	mandate_id  TEXT    NOT NULL,
	agent_id    TEXT    NOT NULL,
	data        TEXT    NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX agent_cards_mandate ON agent_cards (mandate_id);

CREATE TABLE vault_tokens (
	id                  TEXT PRIMARY KEY,
	checkout_session_id TEXT    NOT NULL,
	agent_id            TEXT    NOT NULL,
	data                TEXT    NOT NULL,
	created_at          BIGINT NOT NULL
);
CREATE INDEX vault_tokens_session ON vault_tokens (checkout_session_id);

-- A session is paid once, by one token: inserted only, both unique.
CREATE TABLE checkout_completions (
	session_id TEXT PRIMARY KEY,
	token_id   TEXT    NOT NULL UNIQUE,
	payment_id TEXT    NOT NULL,
	created_at BIGINT NOT NULL
);
