-- Provider-side state, one typed table per kind of object, written by the payment processor from
-- `provider_events`. Each row keeps the latest provider entity (`entity`), the status it reached and
-- that status's rank: a status only ever moves to a higher rank (providers do not keep order, so a
-- late `payment.authorized` must not undo `payment.captured`). Within one rank a newer event
-- (`provider_event_at`) may refresh the row, unless the rank is final.
-- These are not the merchant API's `payments`/`orders`/`refunds`: those belong to that API.

CREATE TABLE provider_payments (
    provider          text        NOT NULL,
    payment_id        text        NOT NULL,
    merchant_id       text        NOT NULL,
    invoice_key       text,
    salon_id          text,
    order_id          text,
    invoice_id        text,
    amount            bigint,
    currency          text,
    status            text        NOT NULL CHECK (status IN ('created', 'pending', 'success', 'failed')),
    provider_status   text        NOT NULL,
    status_rank       integer     NOT NULL,
    method            text,
    captured          boolean     NOT NULL DEFAULT false,
    amount_refunded   bigint      NOT NULL DEFAULT 0,
    error_code        text,
    error_description text,
    entity            jsonb       NOT NULL,
    provider_event_at timestamptz,
    last_event_id     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, payment_id)
);
CREATE INDEX provider_payments_merchant_idx ON provider_payments (merchant_id, created_at DESC);
CREATE INDEX provider_payments_invoice_idx ON provider_payments (merchant_id, invoice_key);

CREATE TABLE provider_orders (
    provider            text        NOT NULL,
    order_id            text        NOT NULL,
    merchant_id         text        NOT NULL,
    amount              bigint,
    amount_paid         bigint,
    currency            text,
    receipt             text,
    status              text        NOT NULL,
    status_rank         integer     NOT NULL,
    notification_status text,
    entity              jsonb       NOT NULL,
    provider_event_at   timestamptz,
    last_event_id       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, order_id)
);

CREATE TABLE provider_refunds (
    provider          text        NOT NULL,
    refund_id         text        NOT NULL,
    merchant_id       text        NOT NULL,
    payment_id        text,
    amount            bigint,
    currency          text,
    status            text        NOT NULL CHECK (status IN ('pending', 'processed', 'failed')),
    status_rank       integer     NOT NULL,
    speed_requested   text,
    speed_processed   text,
    entity            jsonb       NOT NULL,
    provider_event_at timestamptz,
    last_event_id     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, refund_id)
);
CREATE INDEX provider_refunds_payment_idx ON provider_refunds (provider, payment_id);

CREATE TABLE disputes (
    provider          text        NOT NULL,
    dispute_id        text        NOT NULL,
    merchant_id       text        NOT NULL,
    payment_id        text,
    amount            bigint,
    currency          text,
    reason_code       text,
    phase             text,
    status            text        NOT NULL,
    status_rank       integer     NOT NULL,
    respond_by        timestamptz,
    entity            jsonb       NOT NULL,
    provider_event_at timestamptz,
    last_event_id     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, dispute_id)
);
CREATE INDEX disputes_merchant_idx ON disputes (merchant_id, status);

CREATE TABLE downtime_events (
    provider          text        NOT NULL,
    downtime_id       text        NOT NULL,
    merchant_id       text        NOT NULL,
    method            text,
    severity          text,
    scheduled         boolean,
    begin_at          timestamptz,
    end_at            timestamptz,
    instrument        jsonb,
    status            text        NOT NULL,
    status_rank       integer     NOT NULL,
    entity            jsonb       NOT NULL,
    provider_event_at timestamptz,
    last_event_id     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, downtime_id)
);

CREATE TABLE invoices (
    provider          text        NOT NULL,
    invoice_id        text        NOT NULL,
    merchant_id       text        NOT NULL,
    order_id          text,
    payment_id        text,
    amount            bigint,
    amount_paid       bigint,
    amount_due        bigint,
    currency          text,
    status            text        NOT NULL,
    status_rank       integer     NOT NULL,
    short_url         text,
    entity            jsonb       NOT NULL,
    provider_event_at timestamptz,
    last_event_id     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, invoice_id)
);

CREATE TABLE payment_links (
    provider          text        NOT NULL,
    payment_link_id   text        NOT NULL,
    merchant_id       text        NOT NULL,
    order_id          text,
    reference_id      text,
    amount            bigint,
    amount_paid       bigint,
    currency          text,
    status            text        NOT NULL,
    status_rank       integer     NOT NULL,
    short_url         text,
    entity            jsonb       NOT NULL,
    provider_event_at timestamptz,
    last_event_id     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, payment_link_id)
);

-- Bank account validations (penny drops). The bank account number itself is not copied here.
CREATE TABLE fund_account_validations (
    provider          text        NOT NULL,
    validation_id     text        NOT NULL,
    merchant_id       text        NOT NULL,
    fund_account_id   text,
    account_status    text,
    registered_name   text,
    status            text        NOT NULL,
    status_rank       integer     NOT NULL,
    entity            jsonb       NOT NULL,
    provider_event_at timestamptz,
    last_event_id     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, validation_id)
);

-- Activation events of provider accounts: an append-only log (nothing to rank).
CREATE TABLE account_events (
    id                bigserial PRIMARY KEY,
    provider          text        NOT NULL,
    event_id          text        NOT NULL,
    event_type        text        NOT NULL,
    account_id        text,
    merchant_id       text        NOT NULL,
    entity            jsonb,
    provider_event_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, event_id)
);

-- Saved cards (PAYable tokenization). Masked data only: never a full card number.
CREATE TABLE saved_card_tokens (
    provider        text        NOT NULL,
    token_id        text        NOT NULL,
    merchant_id     text        NOT NULL,
    salon_id        text,
    customer_id     text,
    masked_card_no  text,
    expiry          text,
    scheme          text,
    holder_name     text,
    nickname        text,
    default_card    boolean     NOT NULL DEFAULT false,
    reference       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, token_id)
);
CREATE INDEX saved_card_tokens_customer_idx ON saved_card_tokens (merchant_id, customer_id);
