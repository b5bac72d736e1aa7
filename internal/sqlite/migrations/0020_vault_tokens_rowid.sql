-- Vault tokens become a rowid table, as payments and checkout sessions did
-- in 0012: a token is about 700 bytes of JSON, five to a page of the
-- WITHOUT ROWID b-tree, whose splits rewrite neighbouring pages, where a
-- rowid table appends a batch's new tokens to its last page. The id's
-- uniqueness moves to the table's automatic index. Same columns, same
-- index, same rows.
CREATE TABLE vault_tokens_0020 (
	id                  TEXT PRIMARY KEY,
	checkout_session_id TEXT    NOT NULL,
	agent_id            TEXT    NOT NULL,
	data                TEXT    NOT NULL,
	created_at          INTEGER NOT NULL
);
INSERT INTO vault_tokens_0020 (id, checkout_session_id, agent_id, data, created_at)
SELECT id, checkout_session_id, agent_id, data, created_at FROM vault_tokens ORDER BY id;
DROP TABLE vault_tokens;
ALTER TABLE vault_tokens_0020 RENAME TO vault_tokens;
CREATE INDEX vault_tokens_session ON vault_tokens (checkout_session_id);

-- Idempotency records are swept oldest first by rowid, the order they are
-- written in (DeleteIdempotency), so their age needs no index: it cost a
-- page in every batch's commit.
DROP INDEX idempotency_age;
