"""The webhook dispatcher: consumer group `webhook-dispatcher` on `payment:events`, the delivery
scheduler and the shared HTTP client, wired as one aiohttp app with `/health` and `/metrics`.

Cleanup contexts stop in reverse order: the consumer drains first (its handlers need the intake),
then the pipeline (intake, scheduler with its in-flight attempts, recorder), then the HTTP client
and the stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from paystream.consumer import ConsumerConfig, Handler
from paystream.events import ConsumerGroup, Event, Stream
from paystream.logging import get_logger
from paystream.ordering import ordering_key
from paystream.retention import purging
from paystream.service import outbox_relay, stream_consumer
from paystream.web import (
    COMMON_SETTINGS,
    POOL,
    SERVICE_NAME,
    add_ops_routes,
    background,
    error_middleware,
    stores,
    supervisor_of,
)
from webhook_dispatcher.delivery import DeliverySender
from webhook_dispatcher.handlers import build_registry
from webhook_dispatcher.intake import DeliveryIntake
from webhook_dispatcher.keys import HTTP_SESSION, INTAKE, RECORDER, SCHEDULER, SETTINGS
from webhook_dispatcher.recorder import OutcomeRecorder
from webhook_dispatcher.resolver import GuardedResolver
from webhook_dispatcher.scheduler import Scheduler
from webhook_dispatcher.settings import RECLAIM_SWEEP_S, DispatcherSettings
from webhook_dispatcher.upkeep import PURGE_EVERY_S, purge_finished, run_upkeep

log = get_logger(__name__)


async def http_client(app: web.Application) -> AsyncIterator[None]:
    """One client session for every attempt: a big connection pool, no cookies, no proxies."""
    delivery = app[SETTINGS].delivery
    connector = aiohttp.TCPConnector(
        limit=delivery.max_in_flight,
        limit_per_host=0,
        ttl_dns_cache=30,
        keepalive_timeout=30,
        resolver=GuardedResolver(delivery.outbound_policy),
    )
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=delivery.http_timeout_s),
        trust_env=False,
        raise_for_status=False,
    )
    app[HTTP_SESSION] = session
    try:
        yield
    finally:
        await session.close()


async def delivery_pipeline(app: web.Application) -> AsyncIterator[None]:
    """The intake, the scheduler and the recorder, each a task, stopped in a safe order."""
    settings = app[SETTINGS]
    pool = app[POOL]
    scheduler: Scheduler | None = None

    def wake_scheduler() -> None:
        if scheduler is not None:
            scheduler.wake()

    recorder = OutcomeRecorder(
        pool, on_due=wake_scheduler, auto_disable_after_s=settings.auto_disable_after_s
    )
    sender = DeliverySender(app[HTTP_SESSION], settings.delivery)
    scheduler = Scheduler(pool, sender, recorder, settings.delivery, listen_dsn=settings.common.database.url)
    intake = DeliveryIntake(pool, group=ConsumerGroup.WEBHOOK_DISPATCHER, on_due=scheduler.wake)
    app[RECORDER], app[SCHEDULER], app[INTAKE] = recorder, scheduler, intake
    # Taking items from now on, before the supervised tasks' first steps (the consumer's handlers
    # and the attempts must never meet a group committer that refuses them for not having started).
    recorder.start()
    intake.start()
    supervisor = supervisor_of(app)
    drain_s = settings.delivery.http_timeout_s + 5
    recording = supervisor.start("webhook-recorder", recorder.run, grace_s=15)
    scheduling = supervisor.start("webhook-scheduler", scheduler.run, grace_s=drain_s)
    taking_in = supervisor.start("webhook-intake", intake.run, grace_s=drain_s)
    try:
        yield
    finally:
        # The consumer has drained by now. Stop claiming (in-flight attempts finish), finish the
        # intake's queue, then write every outcome.
        scheduling.request_stop()
        taking_in.request_stop()
        await asyncio.gather(scheduling.finish(), taking_in.finish())
        await recording.finish()


def _ordering_lane(event: Event) -> str | None:
    """The consumer's lane of an event: its (merchant, payment), as one string."""
    key = ordering_key(event)
    return None if key is None else f"{event.merchant_id}\x1f{key}"


def build_handler(app: web.Application) -> Handler:
    return build_registry(app[INTAKE])


def consumer_config(settings: DispatcherSettings) -> ConsumerConfig:
    return ConsumerConfig(
        group=ConsumerGroup.WEBHOOK_DISPATCHER,
        streams=settings.common.streams.keys(Stream.PAYMENT_EVENTS),
        concurrency=settings.concurrency,
        read_count=min(256, settings.concurrency),
        handler_timeout_s=settings.handler_timeout_s,
        reclaim_idle_ms=settings.reclaim_idle_ms,
        reclaim_interval_s=RECLAIM_SWEEP_S,
        dead_letter_replicas=settings.common.outbox.wait_replicas,
        # A payment's events are handed to the intake one at a time, in stream order, so that within
        # one dispatcher they are taken in in order and seldom held (see ordering.py).
        ordering_key=_ordering_lane,
    )


async def log_upkeep(app: web.Application, stop: asyncio.Event) -> None:
    await run_upkeep(app[POOL], app[SETTINGS].ordering_grace_s, stop)


async def purge_log(app: web.Application) -> int:
    return await purge_finished(app[POOL], app[SETTINGS].log_retention_days)


def create_app(settings: DispatcherSettings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_NAME] = "webhook-dispatcher"
    app[SETTINGS] = settings
    app[COMMON_SETTINGS] = settings.common
    app.cleanup_ctx.append(stores)
    app.cleanup_ctx.append(outbox_relay())
    app.cleanup_ctx.append(http_client)
    app.cleanup_ctx.append(delivery_pipeline)
    app.cleanup_ctx.append(background("webhook-log-upkeep", log_upkeep, grace_s=5))
    app.cleanup_ctx.append(purging("webhook-log-purge", purge_log, every_s=PURGE_EVERY_S))
    app.cleanup_ctx.append(stream_consumer(consumer_config(settings), build_handler))
    add_ops_routes(app)
    return app
