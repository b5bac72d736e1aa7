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
