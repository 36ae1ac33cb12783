-- Inbound payment providers: the accounts we receive webhooks for, and every webhook received.

-- A provider account: who may post to us, the secret that proves it, and the merchant it belongs to.
-- Razorpay: `account_id` is the provider's `acc_...` id (NULL: attribute any account's events, for a
-- platform with one account) and `webhook_secret` keys the HMAC. PAYable IPG: `account_id` is the
-- merchantKey and `merchant_token` feeds the checkValue. Secrets are readable on purpose: both
-- schemes need the secret itself, not a hash.
CREATE TABLE provider_accounts (
    id             text PRIMARY KEY,
    provider       text        NOT NULL CHECK (provider IN ('razorpay', 'payable')),
    account_id     text,
    merchant_id    text        NOT NULL REFERENCES merchants (id),
    webhook_secret text,
    merchant_token text,
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (provider <> 'razorpay' OR webhook_secret IS NOT NULL),
    CHECK (provider <> 'payable' OR (account_id IS NOT NULL AND merchant_token IS NOT NULL))
);
CREATE UNIQUE INDEX provider_accounts_account_idx ON provider_accounts (provider, account_id)
    WHERE account_id IS NOT NULL;

-- Every verified inbound webhook, exactly as received (`payload` is the raw body text; for PAYable the
-- body with card numbers re-masked). The primary key is the de-duplication key: a provider's retry of
-- an event inserts nothing. Rows are written on the API's hot path, so this table carries no foreign
-- key (each would lock the account row per insert) and no index but a small one for rejected rows.
--   received  stored, waiting for the payment processor
--   processed handled; its effects are in the typed tables and provider_event_audit
--   ignored   a type we have no handler for (stored, not an error)
--   rejected  signed but unusable (a required field missing); `reason` says why; retrying won't help
CREATE TABLE provider_events (
    provider            text        NOT NULL,
    event_id            text        NOT NULL,
    type                text        NOT NULL,
    provider_account_id text,
    account_id          text,
    merchant_id         text,
    payload             text        NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    status              text        NOT NULL DEFAULT 'received'
                        CHECK (status IN ('received', 'processed', 'ignored', 'rejected')),
    reason              text,
    processed_at        timestamptz,
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX provider_events_rejected_idx ON provider_events (received_at) WHERE status = 'rejected';

-- What the processor did with each event: one row per handled event, with the state changes it made.
CREATE TABLE provider_event_audit (
    id          bigserial PRIMARY KEY,
    provider    text        NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    merchant_id text,
    outcome     text        NOT NULL CHECK (outcome IN ('processed', 'ignored', 'rejected')),
    reason      text,
    changes     jsonb       NOT NULL DEFAULT '[]',
    emitted     text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_event_audit_event_idx ON provider_event_audit (provider, event_id);
