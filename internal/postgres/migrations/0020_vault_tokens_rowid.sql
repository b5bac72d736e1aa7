-- SQLite's migration 0020 turns vault tokens into a rowid table and drops
-- the idempotency records' age index (its page layout and its sweep);
-- PostgreSQL's heap tables are that already, and its sweep uses the index.
-- Numbered here too so a version means the same tables in both dialects.
SELECT 1;
