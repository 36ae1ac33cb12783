-- The dispatcher's claim walks the endpoints that have due deliveries and takes each one's oldest
-- due rows, as many as its free slots and rate allow (webhook_dispatcher.scheduler). Both steps
-- read this index: the walk jumps from one endpoint to the next (one descent per endpoint), and
-- each endpoint's rows come in due order. The claim's cost is then the endpoints visited plus the
-- rows taken, whatever the backlog: the previous claim read every due row and sorted them.
-- It replaces the index on (endpoint_id) alone, which served the same pending-per-endpoint lookups.
CREATE INDEX webhook_deliveries_endpoint_due_idx
    ON webhook_deliveries (endpoint_id, due_at) WHERE status = 'pending';
DROP INDEX webhook_deliveries_endpoint_pending_idx;
