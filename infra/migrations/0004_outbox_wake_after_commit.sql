-- Relays are now woken by a NOTIFY sent after the writing transaction (paystream.db
-- notify_after_transaction), not from inside it: a NOTIFY in a transaction holds PostgreSQL's global
-- notification lock through its commit, which serialised every commit that wrote outbox rows.

DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
