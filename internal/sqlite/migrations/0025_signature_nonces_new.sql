-- A batch's nonces are appended here, and moved into signature_nonces a
-- few thousand at a time, in key order, by the writer
-- (sqlite.moveNoncesEvery): inserted one by one, a second's nonces from
-- many agents landed on a page each. Until they are moved, the server
-- looks them up in memory, which it reads from this table when it starts.
CREATE TABLE signature_nonces_new (
	keyid      TEXT    NOT NULL,
	nonce      TEXT    NOT NULL,
	expires_ms INTEGER NOT NULL
);
