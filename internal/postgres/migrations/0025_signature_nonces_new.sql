-- SQLite's 0025 appends a batch's nonces to a table of their own, which
-- its single writer moves into signature_nonces in batches and looks up in
-- memory meanwhile. PostgreSQL, written by many processes, keeps writing
-- signature_nonces, whose entries its WAL logs, not their pages. Nothing
-- changes here; the migration keeps the two dialects numbered alike.
SELECT 1;
