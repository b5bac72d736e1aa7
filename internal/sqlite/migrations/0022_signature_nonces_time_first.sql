-- Nonces of signed requests are keyed by expiry first: a batch's new
-- nonces land together at the end of the table, where a random nonce under
-- its key landed on a page of its own (bench payments --signed wrote
-- 4.4 KB of that index a payment). A replayed request carries the same
-- signed expiry, so it is still refused; an x402 authorization's nonce
-- stays unique per payer whatever its expiry, through a partial index of
-- its own (pb.Nonce.Same). The table is its key (WITHOUT ROWID), and the
-- age index goes: the key begins with the age.
CREATE TABLE signature_nonces_0022 (
	keyid      TEXT    NOT NULL,
	nonce      TEXT    NOT NULL,
	expires_ms INTEGER NOT NULL,
	PRIMARY KEY (expires_ms, keyid, nonce)
) WITHOUT ROWID;
INSERT INTO signature_nonces_0022 (keyid, nonce, expires_ms)
SELECT keyid, nonce, expires_ms FROM signature_nonces;
DROP TABLE signature_nonces;
ALTER TABLE signature_nonces_0022 RENAME TO signature_nonces;
CREATE UNIQUE INDEX signature_nonces_x402 ON signature_nonces (keyid, nonce) WHERE substr(nonce, 1, 5) = 'x402:';
