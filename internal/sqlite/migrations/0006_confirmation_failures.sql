-- Wrong one-time codes tried on each confirmation: a confirmation is locked
-- against codes at pb.MaxConfirmationCodeFailures. Batches add to the count,
-- so that processes guessing at once add up. One row per confirmation that
-- was ever guessed wrong.
CREATE TABLE confirmation_failures (
	confirmation_id TEXT PRIMARY KEY,
	failures        INTEGER NOT NULL CHECK (failures >= 0)
);
