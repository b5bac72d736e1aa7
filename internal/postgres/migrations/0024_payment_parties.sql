-- SQLite's 0024 moves the lists of a payer's and an agent's payments off
-- the indexes payments (payer_id, id) and (agent_id, id), onto a table its
-- single writer fills in batches. PostgreSQL keeps both indexes: many
-- processes write it, and its WAL logs an index insert as the entry, not
-- the page (but for a page's first change after a checkpoint). Nothing
-- changes here; the migration keeps the two dialects numbered alike.
SELECT 1;
