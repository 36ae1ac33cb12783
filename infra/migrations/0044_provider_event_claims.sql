-- The provider event travels once (issue 15): the payment processor claims `provider_events` rows
-- itself (`FOR UPDATE SKIP LOCKED`, woken by NOTIFY on the `provider_events` channel), instead of
-- the API queueing an outbox pointer that a relay publishes to `provider:events` and the processor
-- reads back. The row's status is the work queue and the processor's inbox at once.
--
--   priority  1 for disputes and downtime (handled ahead of a backlog), else 0
--   attempts  handling attempts that failed with something other than the event's own content
--             (a bug, a missing row); at the limit the event ends `failed`, the provider events'
--             dead-letter state, and `last_error` says why
ALTER TABLE provider_events
    ADD COLUMN priority   smallint NOT NULL DEFAULT 0,
    ADD COLUMN attempts   integer  NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    DROP CONSTRAINT provider_events_status_check,
    ADD CONSTRAINT provider_events_status_check
        CHECK (status IN ('received', 'processed', 'ignored', 'rejected', 'failed'));

-- The claim's index: only waiting rows, in the order they are taken (no sort, whatever the backlog).
CREATE INDEX provider_events_waiting_idx ON provider_events (priority DESC, received_at)
    WHERE status = 'received';

CREATE INDEX provider_events_failed_idx ON provider_events (received_at) WHERE status = 'failed';

-- Pointers queued by the previous design and not yet published: their rows are claimed directly now.
DELETE FROM outbox WHERE event_type = 'provider_event.received' AND published_at IS NULL;
