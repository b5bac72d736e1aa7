-- Token Pay: what each usage line drew on the customer's overdraft (a
-- plan whose overage policy is "allow"), beside what the credit paid
-- (charged) and what nothing covered (uncollected).
ALTER TABLE billing_usage ADD COLUMN overdraft INTEGER NOT NULL DEFAULT 0;
