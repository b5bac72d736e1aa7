-- The log's entries and hashes, a commit's together (internal/postgres/log.go):
-- a row per entry cost every commit a heap tuple and four index entries per
-- entry and every integration an update of each, and a row per stored hash
-- two more rows per entry.
--
-- log_commits numbers the commits that log entries, one number each, taken
-- inside the commit's transaction. An entry's sequence number is its
-- commit's number times 2^20 plus its position in the commit.
CREATE SEQUENCE log_commits;

-- The log's entries, a bundle to a row: the entries of one commit, at most
-- 64 (or 64 KiB) to a bundle. seq is the sequence number of the bundle's
-- first entry; first is the index in the tree of its first entry, NULL
-- while the bundle is pending. entries and subjects hold each entry's
-- bytes, and its subject, after a 2-byte big-endian length: the encoding
-- of C2SP tlog-tiles entry bundles.
CREATE TABLE log_bundles (
	seq      BIGINT PRIMARY KEY,
	first    BIGINT,
	n        INTEGER NOT NULL CHECK (n BETWEEN 1 AND 64),
	entries  BYTEA NOT NULL,
	subjects BYTEA NOT NULL
);
CREATE INDEX log_bundles_pending ON log_bundles (seq) WHERE first IS NULL;
CREATE UNIQUE INDEX log_bundles_placed ON log_bundles (first) WHERE first IS NOT NULL;

-- The sequence numbers of a subject's entries, for its trace; except the
-- entries of a payment written with the payment, listed on its row
-- instead: log_refs holds, for each commit, the numbers of the first and
-- the last of them.
CREATE TABLE log_subjects (
	subject TEXT   NOT NULL,
	seq     BIGINT NOT NULL,
	PRIMARY KEY (subject, seq)
);
ALTER TABLE payments ADD COLUMN log_refs BIGINT[];

-- The tree's stored hashes, by their index in golang.org/x/mod/sumdb/tlog's
-- storage order, a run to a row: the hashes one integration adds have
-- consecutive indexes, first on; hashes holds them, 32 bytes each, at most
-- 32 to a run (a row PostgreSQL neither compresses nor moves out of line).
CREATE TABLE log_hash_runs (
	first  BIGINT PRIMARY KEY,
	hashes BYTEA NOT NULL
);

-- Entries stored before this version become bundles of one, numbered as
-- the first entry of a commit numbered by their old seq; placed or
-- pending, as they were. Their lengths must fit the bundles' 2 bytes (the
-- entry format guarantees it; a division by zero, on a row's value so that
-- it is not folded into a constant, stops the migration if not).
SELECT 1 / (length(body) * 0) FROM log_entries WHERE length(body) > 65535 OR octet_length(convert_to(subject, 'UTF8')) > 65535;
INSERT INTO log_bundles (seq, first, n, entries, subjects)
	SELECT seq * 1048576, idx, 1,
		decode(lpad(to_hex(length(body)), 4, '0'), 'hex') || body,
		decode(lpad(to_hex(octet_length(convert_to(subject, 'UTF8'))), 4, '0'), 'hex') || convert_to(subject, 'UTF8')
	FROM log_entries;
INSERT INTO log_subjects (subject, seq) SELECT subject, seq * 1048576 FROM log_entries;
SELECT setval('log_commits', (SELECT COALESCE(max(seq), 0) + 1 FROM log_entries), false);
DROP TABLE log_entries;

-- Hashes stored before this version become runs of one.
INSERT INTO log_hash_runs (first, hashes) SELECT id, hash FROM log_hashes;
DROP TABLE log_hashes;
