-- Merchant dashboard sign-in (issue 14): server-side sessions, and a payment's event timeline.
--
-- The browser holds a random session token in an HttpOnly cookie; only its SHA-256 is stored, so a
-- copy of this table signs nobody in. A session ends at `expires_at` (absolute), after the idle
-- timeout without a request (`last_seen_at`), or at sign-out (`revoked_at`): each is checked on
-- every request (paystream_api.sessions).

CREATE TABLE dashboard_sessions (
    id           text PRIMARY KEY,
    token_hash   text        NOT NULL UNIQUE,
    merchant_id  text        NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    -- For the merchant's own record of where it signed in from; never used to authenticate.
    client_address text,
    user_agent   text
);
CREATE INDEX dashboard_sessions_merchant_idx ON dashboard_sessions (merchant_id, expires_at);

-- The payment an outbox event belongs to: a payment's own events, and those of its refunds and
-- disputes (the same rule as paystream.ordering). The dashboard reads a payment's timeline through
-- this (paystream_api.frontend.dashboard.timeline, one function), until the outbox carries the key
-- as a column of its own. It never raises, so no outbox insert can fail on it: a payload holding an
-- escaped NUL (which jsonb refuses) simply has no key. Marked IMMUTABLE for the index: the payload
-- bytes never change, and neither does the database's encoding.
CREATE FUNCTION outbox_payment_key(payload bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT COALESCE(doc #>> '{data,payment,id}', doc #>> '{data,refund,payment_id}',
                    doc #>> '{data,dispute,payment_id}')
    FROM (SELECT CASE WHEN position('\x5c7530303030'::bytea IN payload) = 0
                      THEN convert_from(payload, 'UTF8')::jsonb END AS doc) AS parsed
$$;

-- Only merchant-facing events (payment:events) are indexed: provider ingest, the hot path, writes
-- other streams and never evaluates the expression.
CREATE INDEX outbox_payment_timeline_idx ON outbox (merchant_id, outbox_payment_key(payload), id)
    WHERE stream = 'payment:events';
