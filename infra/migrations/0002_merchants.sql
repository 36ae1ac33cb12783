-- Merchants: the tenants. API secrets are stored as SHA-256 hashes (they are long random strings,
-- so a fast hash is safe); the webhook secret must be readable to sign deliveries.

CREATE TABLE merchants (
    id              text PRIMARY KEY,
    name            text        NOT NULL,
    email           text        NOT NULL UNIQUE,
    api_key         text        NOT NULL UNIQUE,
    api_secret_hash text        NOT NULL,
    webhook_secret  text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
