-- SQLite's 0026 lists a merchant's payments through payment_parties, as
-- its 0024 does a payer's and an agent's. PostgreSQL keeps its index
-- payments (merchant_id, id). Nothing changes here; the migration keeps the
-- two dialects numbered alike.
SELECT 1;
