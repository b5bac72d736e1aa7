-- The transparency log. SQLite has one writer, so entries enter the tree
-- in the transaction that stores them: idx is the entry's index in the tree.
ALTER TABLE payments ADD COLUMN log_head BLOB;

CREATE TABLE log_entries (
	idx     INTEGER PRIMARY KEY,
	subject TEXT NOT NULL,
	body    BLOB NOT NULL
);
CREATE INDEX log_entries_subject ON log_entries (subject, idx);

-- The tree's stored hashes above the leaves, by their index in
-- golang.org/x/mod/sumdb/tlog's storage order. A leaf hash is not stored:
-- it is read as the hash of its entry (one per proof), which saves the
-- commit path a row per entry.
CREATE TABLE log_hashes (
	id   INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);

CREATE TABLE log_state (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size INTEGER NOT NULL,
	root BLOB NOT NULL
);
INSERT INTO log_state (id, size, root) VALUES (1, 0, X'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
