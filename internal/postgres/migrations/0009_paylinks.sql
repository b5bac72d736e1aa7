-- Payment links: the columns lists filter on, the version every write
-- increments (a change applies only from the version the writer read), and
-- the whole link as JSON; and each payment made through one.
CREATE TABLE pay_links (
	id          TEXT PRIMARY KEY,
	merchant_id TEXT   NOT NULL,
	version     BIGINT NOT NULL,
	data        TEXT   NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX pay_links_merchant ON pay_links (merchant_id, id);

CREATE TABLE pay_link_payments (
	link_id    TEXT   NOT NULL,
	payment_id TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (link_id, payment_id)
);
-- The settlement report finds a payment's link.
CREATE INDEX pay_link_payments_payment ON pay_link_payments (payment_id);
