-- As in SQLite's 0023: the settlement report's debit side lists what left a merchant's
-- accounts: refunds, fees, payouts, compensations, all posted at once
-- (kind 0). A merchant's account is never a hold's debit side (a payment
-- holds the payer's wallet, Token Pay the customer's credit), so the
-- posts of holds (kind 2) are the payers' captures, which the report never
-- reads by their debit side: left out, a capture no longer inserts at its
-- payer's place in this index, a page of the WAL in every commit (2.3 KB
-- a payment in bench payments).
DROP INDEX transfers_debit_time;
CREATE INDEX transfers_debit_time ON transfers (debit_account_id, created_ms) WHERE kind = 0;
