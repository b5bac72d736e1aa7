-- x402 tabs: the columns the facilitator looks tabs up by, the version
-- every write increments, and the whole tab as JSON.
CREATE TABLE x402_tabs (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT    NOT NULL,
	payment_id  TEXT    NOT NULL UNIQUE,
	status      TEXT    NOT NULL,
	close_at    INTEGER,
	version     INTEGER NOT NULL,
	data        TEXT    NOT NULL,
	created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX x402_tabs_closing ON x402_tabs (status, close_at);
