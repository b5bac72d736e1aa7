-- Real-time risk control. A payment keeps the risk engine's assessment,
-- written once at creation: risk is the JSON of pb.Risk without its input
-- ('' when not assessed), risk_input the engine's input, for replays.
-- No index: risk control reads a payer's payments through payments_payer.
ALTER TABLE payments ADD COLUMN risk TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN risk_input TEXT NOT NULL DEFAULT '';

-- The operator's rules, and risk flags on merchants (flags: a JSON array).
-- Configuration, written directly rather than through the ledger's batches.
CREATE TABLE risk_rules (
	name       TEXT PRIMARY KEY,
	expression TEXT   NOT NULL,
	action     TEXT   NOT NULL,
	priority   BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE merchant_flags (
	merchant_id TEXT PRIMARY KEY,
	flags       TEXT   NOT NULL,
	updated_at  BIGINT NOT NULL
);
