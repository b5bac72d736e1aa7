-- A merchant's payments are listed through payment_parties too (see
-- 0024): the index payments (merchant_id, id) wrote its tail page, or a
-- page at each merchant's place, in every commit (0.65 KB a payment in
-- bench payments, one merchant; a page a payment with many). The
-- payments up to the mark get their merchant's entry here; those after it
-- are read by rowid until the writer's next merge adds them.
INSERT INTO payment_parties (party, pid, rid)
	SELECT merchant_id, id, rowid FROM payments WHERE rowid <= (SELECT upto FROM payment_parties_upto)
	ORDER BY 1, 2;
DROP INDEX payments_merchant;
