"""One webhook attempt: sign, POST (no redirects, one timeout for the whole exchange), classify.

Success is a 2xx within the timeout. 410 Gone disables the endpoint. 429 and 503 may name a
`Retry-After`, which replaces the scheduled wait (clamped to the schedule's range). Anything else,
a timeout or a connection error, is a failure that the schedule retries until it runs out.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from paystream.metrics import WEBHOOK_DELIVERY_ATTEMPTS, WEBHOOK_DELIVERY_LATENCY
from paystream.netguard import OutboundUrl, UnsafeUrlError, parse_outbound_url
from webhook_dispatcher.models import AttemptOutcome, DeliveryStatus, DueDelivery
from webhook_dispatcher.resolver import BlockedAddressError
from webhook_dispatcher.schedule import RetrySchedule, parse_retry_after
from webhook_dispatcher.settings import DeliverySettings
from webhook_dispatcher.signing import signed_headers

RETRY_AFTER_STATUSES = frozenset({429, 503})
ERROR_TEXT_LIMIT = 500


class DeliverySender:
    """Makes attempts over one shared client session (its connector pools connections per host)."""

    def __init__(self, session: aiohttp.ClientSession, settings: DeliverySettings) -> None:
        self._session = session
        self._settings = settings
        self._schedule = RetrySchedule(settings.retry_intervals, settings.jitter)
        self._timeout = aiohttp.ClientTimeout(total=settings.http_timeout_s)

    async def attempt(self, delivery: DueDelivery) -> AttemptOutcome:
        """Attempt the delivery once (or decide it cannot be attempted) and say what happened."""
        if not delivery.endpoint_enabled:
            return self._not_attempted(delivery, "the endpoint is disabled")
        if not delivery.secrets:
            return self._not_attempted(delivery, "the merchant has no webhook secret")
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()
        status: int | None = None
        body_text: str | None = None
        retry_after: str | None = None
        error: str | None = None
        outcome = "http_error"
        try:
            target = self._check_url(delivery.url)
            # The endpoint's own headers first: the signature headers always win (the API refuses
            # custom names that could collide with them anyway).
            headers = {
                **dict(delivery.headers),
                **signed_headers(delivery.id, int(time.time()), delivery.payload, delivery.secrets),
            }
            # The parsed URL itself is sent, so the host that was checked is the host connected to.
            async with self._session.post(
                target.url,
                data=delivery.payload,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                body_text = await _read_head(response, self._settings.response_body_limit)
            if 200 <= status < 300:
                outcome = "success"
        except UnsafeUrlError as exc:
            outcome, error = "refused", f"refused: {exc}"
        except TimeoutError:
            outcome = "timeout"
            error = f"timeout: no complete response within {self._settings.http_timeout_s:g}s"
        except aiohttp.ClientConnectorError as exc:
            # The guarded resolver's refusal arrives as a connection error naming the address.
            refused = isinstance(exc.os_error, BlockedAddressError)
            outcome = "refused" if refused else "connection_error"
            error = f"refused: {exc.os_error}" if refused else f"connection failed: {exc.os_error or exc}"
        except (aiohttp.ClientError, OSError) as exc:
            outcome = "connection_error"
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_s = time.perf_counter() - started
        WEBHOOK_DELIVERY_ATTEMPTS.labels(outcome).inc()
        WEBHOOK_DELIVERY_LATENCY.labels(outcome).observe(duration_s)
        return self._classify(
            delivery, attempted_at, round(duration_s * 1000), status, body_text, retry_after, error
        )

    def _check_url(self, url: str) -> OutboundUrl:
        target = parse_outbound_url(url)
        # aiohttp does not resolve IP literals, so its (guarded) resolver never sees them.
        if target.address is not None:
            self._settings.outbound_policy.check_address(target.address)
        return target

    def _classify(
        self,
        delivery: DueDelivery,
        attempted_at: datetime,
        duration_ms: int,
        status: int | None,
        body_text: str | None,
        retry_after: str | None,
        error: str | None,
    ) -> AttemptOutcome:
        outcome = _outcome_of(
            delivery,
            status=DeliveryStatus.SUCCESS,
            attempted=True,
            attempted_at=attempted_at,
            duration_ms=duration_ms,
            response_code=status,
            response_body=body_text,
        )
        if status is not None and 200 <= status < 300:
            return outcome
        if status == 410:
            return replace(
                outcome,
                status=DeliveryStatus.FAILED,
                error="the endpoint answered 410 Gone and has been disabled",
                disable_endpoint=True,
            )
        if status is not None:
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        retry_after_s = parse_retry_after(retry_after) if status in RETRY_AFTER_STATUSES else None
        delay = self._schedule.next_delay(delivery.attempts + 1, retry_after_s)
        return replace(
            outcome,
            status=DeliveryStatus.FAILED if delay is None else DeliveryStatus.PENDING,
            error=_clean_text((error or "failed")[:ERROR_TEXT_LIMIT]),
            retry_in_s=delay,
        )

    @staticmethod
    def _not_attempted(delivery: DueDelivery, reason: str) -> AttemptOutcome:
        # The row leaves the pending set, so the deliveries queued behind it may go.
        return _outcome_of(delivery, status=DeliveryStatus.FAILED, attempted=False, error=reason)


def _outcome_of(delivery: DueDelivery, **fields: Any) -> AttemptOutcome:
    """The outcome of an attempt (or of none) at `delivery`: its identity and place in its order,
    and `fields`."""
    return AttemptOutcome(
        delivery_id=delivery.id,
        lease_token=delivery.lease_token,
        merchant_id=delivery.merchant_id,
        endpoint_id=delivery.endpoint_id,
        order_key=delivery.order_key,
        ordering_seq=delivery.ordering_seq,
        first_attempt=delivery.attempts == 0,
        **fields,
    )


async def _read_head(response: aiohttp.ClientResponse, limit: int) -> str:
    """The first `limit` bytes of the body as text (an incomplete last character is dropped)."""
    head = bytearray()
    while len(head) < limit:
        chunk = await response.content.read(limit - len(head))
        if not chunk:
            break
        head.extend(chunk)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return _clean_text(decoder.decode(bytes(head), final=False))


def _clean_text(text: str) -> str:
    # PostgreSQL text cannot hold NUL characters.
    return text.replace("\x00", "")
