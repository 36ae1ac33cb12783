"""The former home of the backoff and the interruptible waits, now in `paystream.loops`.

Kept as an import path only while code written against it remains (the due-time schedulers, the
writers and the LISTEN loops, which move to their own shared mechanisms); new code imports
`paystream.loops`. Remove this module once nothing imports it.
"""

from __future__ import annotations

from paystream.loops import backoff_delay, wait_any, wait_or_stop

__all__ = ["backoff_delay", "wait_any", "wait_or_stop"]
