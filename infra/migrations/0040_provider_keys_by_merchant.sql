-- Provider ids are unique only within the provider account that issued them: two merchants' Razorpay
-- accounts can both have a `pay_...` (or an event id, an order, an invoice) with the same id, and
-- PAYable order and transaction ids are chosen per merchantKey. So the merchant joins every key of
-- provider data: the event log's de-duplication key, each typed table's primary key, and the
-- indexes that look objects up by id. A row is always found, locked and changed through its
-- merchant; another merchant's event about "the same" id is about another object.
-- The old keys are subsets of the new ones, so existing rows cannot collide.

-- provider_events: the merchant was always written by the API (from the account that signed the
-- event); a row without one would be from before that, so take it from its account, and failing
-- that the empty string (no merchant: such a row is never claimed by an envelope naming a merchant).
UPDATE provider_events e
SET merchant_id = a.merchant_id
FROM provider_accounts a
WHERE e.merchant_id IS NULL AND a.id = e.provider_account_id;
UPDATE provider_events SET merchant_id = '' WHERE merchant_id IS NULL;
ALTER TABLE provider_events
    ALTER COLUMN merchant_id SET NOT NULL,
    DROP CONSTRAINT provider_events_pkey,
    ADD PRIMARY KEY (provider, merchant_id, event_id);

DROP INDEX provider_event_audit_event_idx;
CREATE INDEX provider_event_audit_event_idx ON provider_event_audit (provider, merchant_id, event_id);

-- The typed tables (merchant_id is NOT NULL in all of them already).
ALTER TABLE provider_payments
    DROP CONSTRAINT provider_payments_pkey,
    ADD PRIMARY KEY (provider, merchant_id, payment_id);
ALTER TABLE provider_orders
    DROP CONSTRAINT provider_orders_pkey,
    ADD PRIMARY KEY (provider, merchant_id, order_id);
ALTER TABLE provider_refunds
    DROP CONSTRAINT provider_refunds_pkey,
    ADD PRIMARY KEY (provider, merchant_id, refund_id);
DROP INDEX provider_refunds_payment_idx;
CREATE INDEX provider_refunds_payment_idx ON provider_refunds (provider, merchant_id, payment_id);
ALTER TABLE disputes
    DROP CONSTRAINT disputes_pkey,
    ADD PRIMARY KEY (provider, merchant_id, dispute_id);
ALTER TABLE downtime_events
    DROP CONSTRAINT downtime_events_pkey,
    ADD PRIMARY KEY (provider, merchant_id, downtime_id);
ALTER TABLE invoices
    DROP CONSTRAINT invoices_pkey,
    ADD PRIMARY KEY (provider, merchant_id, invoice_id);
ALTER TABLE payment_links
    DROP CONSTRAINT payment_links_pkey,
    ADD PRIMARY KEY (provider, merchant_id, payment_link_id);
ALTER TABLE fund_account_validations
    DROP CONSTRAINT fund_account_validations_pkey,
    ADD PRIMARY KEY (provider, merchant_id, validation_id);
ALTER TABLE account_events
    DROP CONSTRAINT account_events_provider_event_id_key,
    ADD CONSTRAINT account_events_event_key UNIQUE (provider, merchant_id, event_id);
ALTER TABLE saved_card_tokens
    DROP CONSTRAINT saved_card_tokens_pkey,
    ADD PRIMARY KEY (provider, merchant_id, token_id);
