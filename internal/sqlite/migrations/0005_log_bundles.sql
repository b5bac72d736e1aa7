-- The log's entries and hashes, a commit's together: a row per entry and
-- per stored hash cost the single writer a B-tree insert each, most of
-- what the log added to a commit (BenchmarkCommitPayments).
--
-- The log's entries, stored a bundle to a row: the entries one commit
-- appends, at most 64 (or 64 KiB) to a bundle, instead of a row each.
--
-- entries and subjects hold each entry's bytes, and its subject, after
-- a 2-byte big-endian length: the encoding of C2SP tlog-tiles entry
-- bundles. first is the index of the bundle's first entry, size the
-- tree's size after its last; root is the tree's root at size, on each
-- commit's last bundle (NULL on the others), so the log's state is its
-- last row.
CREATE TABLE log_bundles (
	first    INTEGER PRIMARY KEY,
	size     INTEGER NOT NULL,
	entries  BLOB NOT NULL,
	subjects BLOB NOT NULL,
	root     BLOB
);
-- Each entry's subject, for a payment's or a mandate's trace; except the
-- entries of a payment written in the same commit, whose indexes are
-- appended to the payment's row instead (8 bytes each, big-endian): a row
-- here cost the writer another B-tree insert per entry, about as much as
-- the bundles' rows had saved.
ALTER TABLE payments ADD COLUMN log_idx BLOB;
CREATE TABLE log_subjects (
	subject TEXT NOT NULL,
	idx     INTEGER NOT NULL,
	PRIMARY KEY (subject, idx)
) WITHOUT ROWID;

-- Entries written before this version become bundles of one.
INSERT INTO log_bundles (first, size, entries, subjects, root)
	SELECT idx, idx + 1,
		CAST(unhex(printf('%04X', length(CAST(body AS BLOB)))) || body AS BLOB),
		CAST(unhex(printf('%04X', length(CAST(subject AS BLOB)))) || CAST(subject AS BLOB) AS BLOB),
		root
	FROM log_entries;
INSERT INTO log_subjects (subject, idx) SELECT subject, idx FROM log_entries;
DROP TABLE log_entries;

-- The tree's stored hashes, by their index in golang.org/x/mod/sumdb/tlog's
-- storage order, a run to a row: the hashes a commit adds have consecutive
-- indexes, first on; hashes holds them, 32 bytes each, at most 64 to a
-- run (one page), leaf hashes included. Hashes stored before this version (those
-- above the leaves) become runs of one; the leaf hashes of the entries
-- appended before it, never stored, are read by hashing their entries.
CREATE TABLE log_hash_runs (
	first  INTEGER PRIMARY KEY,
	hashes BLOB NOT NULL
);
INSERT INTO log_hash_runs (first, hashes) SELECT id, hash FROM log_hashes;
DROP TABLE log_hashes;
