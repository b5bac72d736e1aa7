-- Idempotency records are indexed by key, then caller (was caller, then
-- key), as in SQLite's 0021: Paybound's clients send keys that begin with
-- the time (pb.NewID), so a batch's new keys land together at the end of
-- the index instead of on a page per caller. The lookups name both
-- columns, so either order finds a record.
ALTER TABLE idempotency DROP CONSTRAINT idempotency_pkey;
ALTER TABLE idempotency ADD PRIMARY KEY (key, caller);
