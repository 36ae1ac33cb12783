-- Orders: what a merchant expects to be paid. An order takes at most one successful payment
-- (enforced again on payments by payments_one_success_per_order_idx).

CREATE TABLE orders (
    id          text PRIMARY KEY,
    merchant_id text        NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    amount      bigint      NOT NULL CHECK (amount > 0),
    amount_paid bigint      NOT NULL DEFAULT 0 CHECK (amount_paid >= 0 AND amount_paid <= amount),
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    receipt     text,
    notes       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status      text        NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'attempted', 'paid')),
    attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_merchant_created_idx ON orders (merchant_id, created_at DESC, id DESC);
