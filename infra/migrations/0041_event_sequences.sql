-- Per-payment webhook order that survives a dispatcher crash (issue 13).
--
-- Writers number each ordered event (paystream.ordering: a payment's events, and those of its
-- refunds and disputes) within its (stream, merchant, ordering key) as they write it to the outbox:
-- 1, 2, 3..., in commit order, with no gaps (the counter row stays locked until the writing
-- transaction ends). The number travels with the event: the outbox row, then the stream entry's
-- `seq` field. The dispatcher records which numbers it has taken in per (merchant, key) and holds a
-- delivery while an earlier number has not been taken in, or while an earlier delivery to the same
-- endpoint has not had its first attempt (webhook_dispatcher/ordering.py).
--
-- Neither table is purged: a payment's numbering must go on where it stopped, however late its
-- refund or dispute comes (one small row per payment, on each side).

CREATE TABLE event_sequences (
    stream       text   NOT NULL,
    merchant_id  text   NOT NULL,
    ordering_key text   NOT NULL,
    -- The number of the key's latest event.
    last_seq     bigint NOT NULL CHECK (last_seq > 0),
    PRIMARY KEY (stream, merchant_id, ordering_key)
);

-- NULL: an event without an order (no ordering key), or written before numbering existed.
ALTER TABLE outbox ADD COLUMN ordering_seq bigint;

-- What the dispatcher has taken in, per (merchant, key): every number up to `taken_through`, and
-- the numbers in `taken_ahead` (events that overtook an earlier one). An event counts whether or not
-- any endpoint receives it. The row is also the key's lock: every change to the key's ordering state
-- locks it first.
CREATE TABLE webhook_order_keys (
    merchant_id   text        NOT NULL,
    order_key     text        NOT NULL,
    taken_through bigint      NOT NULL DEFAULT 0,
    taken_ahead   bigint[]    NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, order_key)
);

-- The state of a key that has taken in every number up to `through` and the numbers in `taken`:
-- `through` moves up over the numbers that now follow it without a gap; the rest stay ahead.
-- One row; declared as a table function so that PostgreSQL inlines it into the calling statement
-- (half the cost of a call per key, measured on the intake's upsert).
CREATE FUNCTION webhook_order_taken(through bigint, taken bigint[])
RETURNS TABLE (taken_through bigint, taken_ahead bigint[]) LANGUAGE sql IMMUTABLE AS $$
    WITH ahead AS (
        SELECT n, row_number() OVER (ORDER BY n) AS place
        FROM (SELECT DISTINCT n FROM unnest(taken) AS u(n) WHERE n > through) AS distinct_ahead
    ), run AS (
        -- The i-th smallest number ahead extends the run exactly when it is `through + i`.
        SELECT through + count(*) FILTER (WHERE n = through + place) AS upto FROM ahead
    )
    SELECT run.upto, array(SELECT n FROM ahead WHERE n > run.upto ORDER BY n) FROM run
$$;

-- The delivery's number within its key (from the event's `seq`); NULL: never held.
ALTER TABLE webhook_deliveries ADD COLUMN ordering_seq bigint;

-- The deliveries of a key still waiting for their first attempt (what the ordering rule reads).
CREATE INDEX webhook_deliveries_unattempted_idx
    ON webhook_deliveries (merchant_id, order_key, endpoint_id, ordering_seq)
    WHERE status = 'pending' AND attempts = 0 AND ordering_seq IS NOT NULL;

-- Read only by the previous ordering rule (event time order within an endpoint's key).
DROP INDEX webhook_deliveries_order_idx;

-- Holds of the previous rule carry no number, so nothing would release them any more: due now.
UPDATE webhook_deliveries SET due_at = now(), next_retry_at = now(), updated_at = now()
WHERE status = 'pending' AND due_at IS NULL;

-- webhook_lock_order_keys() (0030) is no longer called; it stays for dispatchers of the previous
-- release that still run during a rolling deploy, and goes with the next migration that touches it.
