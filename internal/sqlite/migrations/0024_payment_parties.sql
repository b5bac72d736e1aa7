-- A payer's and an agent's payments are listed through payment_parties,
-- which the writer fills in batches, instead of through the indexes
-- payments (payer_id, id) and (agent_id, id). Each new payment inserted an
-- entry at its payer's place in the one and its agent's in the other:
-- with many payers paying at once, a page of each index written to the WAL
-- per payment (4.5 KB a payment in bench payments, 4 more signed), however
-- large the batch. The writer now adds the entries of a few thousand
-- payments at once, in key order, so a payer with several payments among
-- them costs one page for all (sqlite.Store.mergeParties).
--
-- payment_parties_upto is the greatest payments rowid whose entries are
-- in payment_parties; the payments after it are read by rowid
-- (sqlstore.PartyPayments). party is a payer's or an agent's ID, whose
-- prefixes (usr_, agt_) keep them apart; rid is the payment's rowid, which
-- an upsert keeps. A migration that rebuilds payments (new rowids) must
-- rebuild payment_parties too.
CREATE TABLE payment_parties (
	party TEXT    NOT NULL,
	pid   TEXT    NOT NULL,
	rid   INTEGER NOT NULL,
	PRIMARY KEY (party, pid)
) WITHOUT ROWID;
CREATE TABLE payment_parties_upto (upto INTEGER NOT NULL);
INSERT INTO payment_parties (party, pid, rid)
	SELECT payer_id, id, rowid FROM payments
	UNION ALL SELECT agent_id, id, rowid FROM payments WHERE agent_id <> ''
	ORDER BY 1, 2;
INSERT INTO payment_parties_upto (upto) SELECT COALESCE(MAX(rowid), 0) FROM payments;
DROP INDEX payments_payer;
DROP INDEX payments_agent;
