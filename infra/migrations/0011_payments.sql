-- Payments made through the merchant API. Of a card only the network and the last four digits are
-- kept. `order_id` is what the merchant sent (one of its orders or its own reference); `order_ref`
-- is set when it names one of the merchant's orders. The processor sets `process_after` when it
-- accepts the payment and settles it once that time has passed, so a restart mid-delay loses nothing.

CREATE TABLE payments (
    id                text PRIMARY KEY,
    merchant_id       text        NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    order_id          text        NOT NULL,
    order_ref         text        REFERENCES orders (id),
    amount            bigint      NOT NULL CHECK (amount > 0),
    currency          text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    method            text        NOT NULL CHECK (method IN ('upi', 'card')),
    vpa               text,
    card_network      text        CHECK (card_network IN ('visa', 'mastercard', 'rupay', 'amex')),
    card_last4        text        CHECK (card_last4 ~ '^[0-9]{4}$'),
    status            text        NOT NULL CHECK (status IN ('created', 'pending', 'success', 'failed')),
    captured          boolean     NOT NULL DEFAULT false,
    captured_at       timestamptz,
    amount_refunded   bigint      NOT NULL DEFAULT 0,
    error_code        text,
    error_description text,
    process_after     timestamptz,
    settled_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (method <> 'upi' OR vpa IS NOT NULL),
    CHECK (method <> 'card' OR (card_network IS NOT NULL AND card_last4 IS NOT NULL)),
    -- The last line of defence behind the refund lock: refunds never exceed the payment.
    CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    CHECK (NOT captured OR status = 'success')
);
CREATE INDEX payments_merchant_created_idx ON payments (merchant_id, created_at DESC, id DESC);
CREATE INDEX payments_merchant_status_created_idx ON payments (merchant_id, status, created_at DESC, id DESC);
-- The processor's scheduler: pending payments by due time.
CREATE INDEX payments_due_idx ON payments (process_after) WHERE status = 'pending';
CREATE UNIQUE INDEX payments_one_success_per_order_idx ON payments (order_ref)
    WHERE status = 'success' AND order_ref IS NOT NULL;
