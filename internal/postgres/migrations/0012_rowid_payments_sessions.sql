-- SQLite's migration 0012 turns payments and checkout sessions into rowid
-- tables (its page layout); PostgreSQL's heap tables are that already.
-- Numbered here too so a version means the same tables in both dialects.
SELECT 1;
