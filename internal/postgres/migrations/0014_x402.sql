-- x402 tabs: the columns the facilitator looks tabs up by, the version
-- every write increments (a change applies only from the version the
-- writer read), and the whole tab as JSON.
CREATE TABLE x402_tabs (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT   NOT NULL,
	payment_id  TEXT   NOT NULL UNIQUE,
	status      TEXT   NOT NULL,
	close_at    BIGINT,
	version     BIGINT NOT NULL,
	data        TEXT   NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX x402_tabs_closing ON x402_tabs (status, close_at);
