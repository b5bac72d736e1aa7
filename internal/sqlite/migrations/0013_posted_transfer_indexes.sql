-- The settlement report reads only posted transfers (kinds 0 and 2), so
-- its two indexes leave out holds (1) and voids (3): half the entries, and
-- a payment's hold no longer inserts at its payer's place in the debit
-- index (a scattered page write in every commit).
DROP INDEX transfers_credit_time;
DROP INDEX transfers_debit_time;
CREATE INDEX transfers_credit_time ON transfers (credit_account_id, created_ms) WHERE kind IN (0, 2);
CREATE INDEX transfers_debit_time ON transfers (debit_account_id, created_ms) WHERE kind IN (0, 2);
