-- Nonces of signed requests are keyed by expiry first, as in SQLite's
-- 0022: a batch's new nonces land together at the end of the index. A
-- replayed request carries the same signed expiry, so it is still refused;
-- an x402 authorization's nonce stays unique per payer whatever its
-- expiry, through a partial index of its own (pb.Nonce.Same). The age
-- index goes: the key begins with the age.
ALTER TABLE signature_nonces DROP CONSTRAINT signature_nonces_pkey;
ALTER TABLE signature_nonces ADD PRIMARY KEY (expires_ms, keyid, nonce);
DROP INDEX signature_nonces_age;
CREATE UNIQUE INDEX signature_nonces_x402 ON signature_nonces (keyid, nonce) WHERE substr(nonce, 1, 5) = 'x402:';
