-- The settlement report reads a merchant's transfers by account and time:
-- one index for each side a transfer may touch the merchant's account on.
CREATE INDEX transfers_credit_time ON transfers (credit_account_id, created_ms);
CREATE INDEX transfers_debit_time ON transfers (debit_account_id, created_ms);
