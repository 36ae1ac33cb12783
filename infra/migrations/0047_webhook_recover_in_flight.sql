-- Recovery (`POST /api/v1/webhook-endpoints/{id}/recover`) re-sends the endpoint's failed
-- deliveries of a window. A delivery of the window whose attempt is in flight at that moment is
-- not failed yet; but that attempt was made while the endpoint was failing, and when it is the
-- delivery's last, the delivery fails for good an instant after the recovery, which never re-sends
-- it. Its outcome is its lease holder's to write, so recovery cannot re-send it itself: it leaves
-- here when it would have re-sent it, and the dispatcher, writing a failure for good of a delivery
-- marked so, makes it due at that time instead. Every outcome written clears the mark.
ALTER TABLE webhook_deliveries ADD COLUMN recover_at timestamptz;
