-- Refunds of successful payments. The refundable amount is checked with the payment row locked,
-- so concurrent refunds never exceed it (payments.amount_refunded is kept in the same transaction).

CREATE TABLE refunds (
    id            text PRIMARY KEY,
    merchant_id   text        NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    payment_id    text        NOT NULL REFERENCES payments (id),
    amount        bigint      NOT NULL CHECK (amount > 0),
    currency      text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status        text        NOT NULL CHECK (status IN ('pending', 'processed', 'failed')),
    reason        text,
    process_after timestamptz,
    processed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment_created_idx ON refunds (payment_id, created_at DESC, id DESC);
CREATE INDEX refunds_due_idx ON refunds (process_after) WHERE status = 'pending';
