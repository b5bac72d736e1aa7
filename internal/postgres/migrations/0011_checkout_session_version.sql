-- A checkout session's version: the count of its writes, so that a store
-- several processes share writes a change only over the version its
-- writer read. A session written before this has been written once as far
-- as anyone can tell.
ALTER TABLE checkout_sessions ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
