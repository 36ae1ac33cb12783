"""Wiring shared by every service: the outbox relay and stream consumers as background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from paystream.consumer import ConsumerConfig, Handler, StreamConsumer
from paystream.outbox import OutboxRelay
from paystream.web import COMMON_SETTINGS, POOL, REDIS, CleanupContext, background


def outbox_relay() -> CleanupContext:
    """Publish this process's (and any dead replica's) committed outbox rows for the app's life."""

    async def run(app: web.Application, stop: asyncio.Event) -> None:
        settings = app[COMMON_SETTINGS]
        relay = OutboxRelay(app[POOL], app[REDIS], settings.outbox, listen_dsn=settings.database.url)
        await relay.run(stop)

    return background("outbox-relay", run)


def stream_consumer(
    config: ConsumerConfig, handler_factory: Callable[[web.Application], Handler]
) -> CleanupContext:
    """Run a consumer group member for the app's life; on shutdown it drains in-flight handlers."""

    async def run(app: web.Application, stop: asyncio.Event) -> None:
        consumer = StreamConsumer(app[REDIS], config, handler_factory(app))
        await consumer.run(stop)

    return background(f"consumer:{config.group}", run, grace_s=config.shutdown_grace_s + 5)
