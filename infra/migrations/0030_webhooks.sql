-- Merchant webhooks: endpoint configuration, secret rotation and the delivery log (issue 4).
--
-- The delivery log is also the dispatcher's durable schedule: `due_at` is when a dispatcher may next
-- claim the row (the next attempt, or the end of a claim's lease while an attempt is in flight);
-- `next_retry_at` is what the merchant sees. A pending row with no `due_at` is held back until the
-- delivery before it (same endpoint, same payment) has had its first attempt.

CREATE TABLE webhook_endpoints (
    id              text PRIMARY KEY,
    merchant_id     text        NOT NULL UNIQUE REFERENCES merchants (id),
    url             text        NOT NULL,
    -- NULL: every event type, including ones added later.
    events          text[],
    enabled         boolean     NOT NULL DEFAULT true,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The secret a rotation replaced; deliveries carry its signatures too until it expires (24 h).
-- merchants.webhook_secret stays the current secret.
CREATE TABLE webhook_previous_secrets (
    merchant_id text PRIMARY KEY REFERENCES merchants (id),
    secret      text        NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    -- Also the `webhook-id` header: stable across every attempt of one event to one endpoint.
    id               text PRIMARY KEY,
    merchant_id      text        NOT NULL REFERENCES merchants (id),
    endpoint_id      text        NOT NULL REFERENCES webhook_endpoints (id),
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    -- The exact body bytes, serialized once: every attempt sends (and signs) the same bytes.
    payload          bytea       NOT NULL,
    -- Deliveries with the same (endpoint_id, order_key) make their first attempts in event order.
    order_key        text,
    event_at         timestamptz NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'success', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_retry_at    timestamptz,
    due_at           timestamptz,
    -- Set while a dispatcher holds the row (an attempt in flight); results are written only by the
    -- holder of the current token, so an expired claim can never overwrite a newer one.
    lease_token      uuid,
    last_attempt_at  timestamptz,
    response_code    integer,
    response_body    text,
    duration_ms      integer,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX webhook_deliveries_merchant_idx ON webhook_deliveries (merchant_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_merchant_status_idx
    ON webhook_deliveries (merchant_id, status, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_order_idx
    ON webhook_deliveries (endpoint_id, order_key, event_at, event_id) WHERE order_key IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint_pending_idx
    ON webhook_deliveries (endpoint_id) WHERE status = 'pending';

-- Serialise the ordering decisions for a set of (endpoint, order key) pairs: transaction-scoped
-- advisory locks, always taken in the same (sorted) order so that two batches never deadlock.
CREATE FUNCTION webhook_lock_order_keys(endpoint_ids text[], order_keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lock_key integer;
BEGIN
    FOR lock_key IN
        SELECT DISTINCT hashtext(e || chr(31) || o)
        FROM unnest(endpoint_ids, order_keys) AS k(e, o)
        WHERE o IS NOT NULL
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7304, lock_key);
    END LOOP;
END
$$;

-- Retention: finished deliveries are purged after WEBHOOK_LOG_RETENTION_DAYS.
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);
-- Held deliveries (waiting for an earlier one of their payment), for the upkeep sweep.
CREATE INDEX webhook_deliveries_held_idx ON webhook_deliveries (updated_at)
    WHERE status = 'pending' AND due_at IS NULL;
