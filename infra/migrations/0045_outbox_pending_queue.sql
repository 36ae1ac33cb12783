-- The outbox writes each event once (issue 18).
--
-- Until now the relay marked every published row with a non-HOT UPDATE of `published_at` and
-- `stream_entry_id`: a second version of a wide row and new entries in each of its indexes (the
-- timeline index re-parsing the payload's JSON), and the relay found unpublished rows through a
-- partial index whose dead entries (one per published row) only a VACUUM of the whole, retained
-- outbox removes: measured, the relay's claim read 613 index and heap pages per call, growing with
-- every row published since the last VACUUM.
--
-- Now an unpublished event is a row of `outbox_pending`, a queue of ids that stays as small as the
-- backlog: a statement trigger queues every inserted outbox row (any writer, one INSERT per
-- statement), the relay deletes the ids it published, and the outbox row itself is never updated.
-- Being tiny, the queue is vacuumed often and cheaply (the relay also vacuums it, see
-- paystream.outbox). Deploy every service together with this migration: a relay from before it
-- reads columns that are gone.
CREATE TABLE outbox_pending (
    id bigint PRIMARY KEY
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

INSERT INTO outbox_pending (id) SELECT id FROM outbox WHERE published_at IS NULL;

CREATE FUNCTION outbox_queue_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id) SELECT id FROM inserted;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_queue_inserted AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION outbox_queue_inserted();

DROP INDEX outbox_unpublished_idx;
ALTER TABLE outbox DROP COLUMN published_at, DROP COLUMN stream_entry_id;

-- The payment an event belongs to (paystream.ordering's key, the payment id) as a column the
-- writer fills, instead of an expression index that parsed every payload's JSON on insert. The
-- dashboard's payment timeline reads through it.
ALTER TABLE outbox ADD COLUMN ordering_key text;
UPDATE outbox SET ordering_key = outbox_payment_key(payload) WHERE stream = 'payment:events';
CREATE INDEX outbox_payment_timeline_by_key_idx ON outbox (merchant_id, ordering_key, id)
    WHERE stream = 'payment:events' AND ordering_key IS NOT NULL;
DROP INDEX outbox_payment_timeline_idx;
DROP FUNCTION outbox_payment_key(bytea);
