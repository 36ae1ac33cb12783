-- Settled provider events (processed, ignored, rejected) are purged after
-- PROVIDER_EVENTS_RETENTION_DAYS (payment_processor.provider_events.retention): past that a
-- provider's re-send of one is stored and handled again, which the forward-only entity tables make
-- a no-op. Rows arrive in time order, so a BRIN index finds the old ones for a few pages of index
-- and next to no cost on the ingest path.
CREATE INDEX provider_events_received_brin ON provider_events USING brin (received_at);
