-- Disputes: the columns that lists filter on, and the whole dispute as JSON.
CREATE TABLE disputes (
	id          TEXT PRIMARY KEY,
	payment_id  TEXT    NOT NULL,
	payer_id    TEXT    NOT NULL,
	merchant_id TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	data        TEXT    NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX disputes_payment ON disputes (payment_id, id);
CREATE INDEX disputes_payer ON disputes (payer_id, id);
CREATE INDEX disputes_merchant ON disputes (merchant_id, id);

-- The verifier key of the log key that signs this database's checkpoints,
-- claimed by the first server to start: every process must sign with it.
ALTER TABLE log_state ADD COLUMN vkey TEXT NOT NULL DEFAULT '';
