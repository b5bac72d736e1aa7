-- An agent revoked by its user: its API key no longer authenticates and
-- its keys no longer verify; NULL while it is in force. Seconds.
ALTER TABLE agents ADD COLUMN revoked_at BIGINT;
