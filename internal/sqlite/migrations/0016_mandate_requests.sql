-- Agents' mandate requests: the columns lists filter on, the version a
-- decision increments, and the whole request as JSON.
CREATE TABLE mandate_requests (
	id         TEXT PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	agent_id   TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	data       TEXT    NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX mandate_requests_user ON mandate_requests (user_id, id);
CREATE INDEX mandate_requests_agent ON mandate_requests (agent_id, status, id);
