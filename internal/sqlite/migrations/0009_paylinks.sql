-- Payment links: the columns lists filter on, the version every write
-- increments, and the whole link as JSON; and each payment made through one.
CREATE TABLE pay_links (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT    NOT NULL,
	version     INTEGER NOT NULL,
	data        TEXT    NOT NULL,
	created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pay_links_merchant ON pay_links (merchant_id, id);

CREATE TABLE pay_link_payments (
	link_id    TEXT    NOT NULL,
	payment_id TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (link_id, payment_id)
) WITHOUT ROWID;
-- The settlement report finds a payment's link.
CREATE INDEX pay_link_payments_payment ON pay_link_payments (payment_id);
