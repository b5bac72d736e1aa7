-- Signing in to the wallet (internal/signin). A user's one live sign-in
-- code, hashed; and the wrong codes counted against each user, with the
-- lock they lead to (locked_until, Unix seconds, 0 when none), kept here
-- so that a restart or another process cannot reset the count.
CREATE TABLE signin_codes (
	user_id    TEXT PRIMARY KEY,
	code_hash  BYTEA   NOT NULL,
	created_at BIGINT  NOT NULL,
	expires_at BIGINT  NOT NULL
);
CREATE TABLE signin_guards (
	user_id      TEXT PRIMARY KEY,
	failures     INTEGER NOT NULL CHECK (failures >= 0),
	locked_until BIGINT  NOT NULL
);
-- The wallet's sessions, shared by every process and kept across restarts:
-- only the SHA-256 of a session's token (the cookie) is stored.
CREATE TABLE wallet_sessions (
	token_hash   BYTEA  PRIMARY KEY,
	role         TEXT   NOT NULL,
	principal_id TEXT   NOT NULL,
	user_id      TEXT   NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL
);
CREATE INDEX wallet_sessions_principal ON wallet_sessions (principal_id, created_at);
CREATE INDEX wallet_sessions_expiry ON wallet_sessions (expires_at);
-- Passkey sign-in challenges already used, until they expire: the
-- challenges themselves are not stored (each carries its expiry and a MAC),
-- so any process can check one; this makes each good once across them all.
CREATE TABLE wallet_challenges (
	hash       BYTEA   PRIMARY KEY,
	expires_at BIGINT  NOT NULL
);
CREATE INDEX wallet_challenges_expiry ON wallet_challenges (expires_at);
-- Token Pay's objects by customer, for the wallet's Token Pay page: with
-- which providers a person and their agents have credit or usage.
CREATE INDEX billing_objects_customer ON billing_objects (customer_id, provider_id);
