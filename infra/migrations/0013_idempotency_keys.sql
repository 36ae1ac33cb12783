-- Idempotency keys of POST requests, per merchant, kept 24 hours.
-- A request claims its key (state in_progress, a fresh claim_token) in a short transaction of its
-- own before any work; the transaction that creates the object stores the answer and marks the key
-- completed, but only while it still holds the claim (claim_token unchanged). A claim left
-- in_progress by a crashed request may be taken over once locked_at is old enough.
-- fingerprint is a keyed hash (HMAC) of method, path and body: a card number cannot be recovered
-- from it. The stored answer never contains card data.

CREATE TABLE idempotency_keys (
    merchant_id     text        NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    idempotency_key text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    state           text        NOT NULL CHECK (state IN ('in_progress', 'completed')),
    claim_token     uuid        NOT NULL,
    locked_at       timestamptz NOT NULL DEFAULT now(),
    response_status smallint,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, idempotency_key),
    CHECK (state <> 'completed' OR (response_status IS NOT NULL AND response_body IS NOT NULL))
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
