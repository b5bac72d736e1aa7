-- Agents' mandate requests: the columns lists filter on, the version a
-- decision increments (applied only over the version the writer read), and
-- the whole request as JSON.
CREATE TABLE mandate_requests (
	id         TEXT PRIMARY KEY,
	user_id    TEXT   NOT NULL,
	agent_id   TEXT   NOT NULL,
	status     TEXT   NOT NULL,
	version    BIGINT NOT NULL,
	data       TEXT   NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX mandate_requests_user ON mandate_requests (user_id, id);
CREATE INDEX mandate_requests_agent ON mandate_requests (agent_id, status, id);
