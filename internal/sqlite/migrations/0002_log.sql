-- The transparency log. SQLite has one writer, so entries enter the tree
-- in the transaction that stores them: idx is the entry's index in the tree.
ALTER TABLE payments ADD COLUMN log_head BLOB;

-- root is the tree's root after the entry, on the last entry of each
-- commit (NULL on the others): the log's state is its last row, so that a
-- commit does not also rewrite a state row's page.
CREATE TABLE log_entries (
	idx     INTEGER PRIMARY KEY,
	subject TEXT NOT NULL,
	body    BLOB NOT NULL,
	root    BLOB
);
-- Every index entry ends with the rowid, idx: this index orders a subject's
-- entries by idx without holding idx twice, as (subject, idx) would.
CREATE INDEX log_entries_subject ON log_entries (subject);

-- The tree's stored hashes above the leaves, by their index in
-- golang.org/x/mod/sumdb/tlog's storage order. A leaf hash is not stored:
-- it is read as the hash of its entry (one per proof), which saves the
-- commit path a row per entry.
CREATE TABLE log_hashes (
	id   INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);

-- The log's settings (its key, 0003); its size and root are those of the
-- last entry.
CREATE TABLE log_state (
	id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO log_state (id) VALUES (1);
