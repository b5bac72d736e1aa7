-- The transparency log. Several processes store entries at once, so an
-- entry is stored with its batch (seq orders entries by insertion) and
-- enters the tree, receiving idx, when one process integrates the entries
-- pending; log_state's single row serializes integrations.
ALTER TABLE payments ADD COLUMN log_head BYTEA;

CREATE TABLE log_entries (
	seq     BIGSERIAL PRIMARY KEY,
	idx     BIGINT UNIQUE,
	subject TEXT  NOT NULL,
	body    BYTEA NOT NULL
);
CREATE INDEX log_entries_pending ON log_entries (seq) WHERE idx IS NULL;
CREATE INDEX log_entries_subject ON log_entries (subject, idx);

-- The tree's stored hashes, by their index in golang.org/x/mod/sumdb/tlog's
-- storage order.
CREATE TABLE log_hashes (
	id   BIGINT PRIMARY KEY,
	hash BYTEA NOT NULL
);

CREATE TABLE log_state (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size BIGINT NOT NULL,
	root BYTEA  NOT NULL
);
INSERT INTO log_state (id, size, root) VALUES (1, 0, '\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
