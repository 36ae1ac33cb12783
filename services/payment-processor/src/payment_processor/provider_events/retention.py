"""Retention of provider events: settled rows are deleted after `PROVIDER_EVENTS_RETENTION_DAYS`.

A stored provider event is the de-duplication record of its webhook (a provider's re-send of it is
answered 200 and changes nothing) and the work queue of the processor; once it is settled and older
than any provider's re-send window (Razorpay retries for 24 hours) it serves neither. Waiting and
`failed` rows (the dead letters that `payctl provider-events` lists) are kept whatever their age.
The audit rows (`provider_event_audit`) are kept: they are the record of what each event changed.
"""

from __future__ import annotations

from aiohttp import web

from payment_processor.keys import SETTINGS
from paystream.retention import delete_in_batches, purging
from paystream.web import POOL, CleanupContext

PURGE_EVERY_S = 3600.0

PURGE_SETTLED = """
DELETE FROM provider_events WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM provider_events
    WHERE received_at < now() - make_interval(days => $2)
      AND status IN ('processed', 'ignored', 'rejected')
    LIMIT $1 FOR UPDATE SKIP LOCKED))"""


async def purge_settled(app: web.Application) -> int:
    """Delete settled provider events past the retention period; how many were deleted."""
    return await delete_in_batches(app[POOL], PURGE_SETTLED, app[SETTINGS].provider_events_retention_days)


def provider_event_purge() -> CleanupContext:
    return purging("provider-events-purge", purge_settled, every_s=PURGE_EVERY_S)
