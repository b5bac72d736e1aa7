-- Idempotency records are indexed by key, then caller (was caller, then
-- key). Paybound's clients send keys that begin with the time (the Go
-- client, the CLI and x402's payment identifiers: pb.NewID), so a batch's
-- new keys land together at the end of the index instead of on a page per
-- caller: bench payments wrote 7.3 KB of index pages a payment for it,
-- now 1.2 KB. A random key (a UUIDv4) costs what it did. The lookup names
-- both columns, so either order finds a record. Rows keep their rowids:
-- the sweep takes the oldest by rowid (DeleteIdempotency).
CREATE TABLE idempotency_0021 (
	caller       TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	request_hash BLOB    NOT NULL,
	status       INTEGER NOT NULL,
	body         BLOB    NOT NULL,
	created_ms   INTEGER NOT NULL,
	PRIMARY KEY (key, caller)
);
INSERT INTO idempotency_0021 (rowid, caller, key, request_hash, status, body, created_ms)
SELECT rowid, caller, key, request_hash, status, body, created_ms FROM idempotency ORDER BY rowid;
DROP TABLE idempotency;
ALTER TABLE idempotency_0021 RENAME TO idempotency;
