-- Many webhook endpoints per merchant (issue 16), each with its own event filter, secret, custom
-- headers, rate limit, state and log. The endpoint `PUT /api/v1/webhooks/config` manages is the
-- merchant's default endpoint (`is_default`); it keeps signing with the merchant's secret
-- (merchants.webhook_secret and webhook_previous_secrets), so that configuration works exactly as
-- before. Every other endpoint has a secret of its own (`secret` is NULL only on the default one).

ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_merchant_id_key;

ALTER TABLE webhook_endpoints
    ADD COLUMN is_default boolean NOT NULL DEFAULT false,
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN secret text,
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_expires_at timestamptz,
    -- Sent with every attempt; never a `webhook-*` or `X-Webhook-*` name (the API refuses them).
    ADD COLUMN headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Attempts per second at most (NULL: no limit). Deliveries above it wait; they do not fail.
    ADD COLUMN rate_limit_per_s integer CHECK (rate_limit_per_s > 0),
    -- The rate limit's schedule (a generic cell rate algorithm): the claim may take as many of the
    -- endpoint's due deliveries as fit between this instant and one second from now.
    ADD COLUMN rate_next_at timestamptz,
    -- When the current run of failed attempts began (NULL: the last attempt succeeded, or none
    -- was made). An endpoint failing for WEBHOOK_AUTO_DISABLE_AFTER_S is disabled.
    ADD COLUMN failing_since timestamptz,
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN deleted_at timestamptz;

-- Every endpoint that existed was its merchant's only one, hence its default.
UPDATE webhook_endpoints SET is_default = true;
UPDATE webhook_endpoints SET disabled_at = updated_at WHERE NOT enabled;

CREATE UNIQUE INDEX webhook_endpoints_one_default_idx ON webhook_endpoints (merchant_id)
    WHERE is_default AND deleted_at IS NULL;
CREATE INDEX webhook_endpoints_merchant_idx ON webhook_endpoints (merchant_id, created_at, id)
    WHERE deleted_at IS NULL;
-- The claim's look at rate-limited endpoints.
CREATE INDEX webhook_endpoints_limited_idx ON webhook_endpoints (id)
    WHERE rate_limit_per_s IS NOT NULL;

-- A delivery log read per endpoint (the dashboard's endpoint page, recovery's window).
CREATE INDEX webhook_deliveries_endpoint_created_idx
    ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
