"""Wiring shared by every service: the outbox relay and stream consumers as background tasks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiohttp import web

from paystream.consumer import ConsumerConfig, Handler, StreamConsumer
from paystream.errors import SettingsError
from paystream.logging import configure_logging, get_logger
from paystream.outbox import OutboxRelay
from paystream.settings import CommonSettings
from paystream.web import COMMON_SETTINGS, POOL, REDIS, SERVICE_NAME, CleanupContext, background, serve


def outbox_relay(*, takeover_delay_s: float = 0.0) -> CleanupContext:
    """Publish this process's (and any dead replica's) committed outbox rows for the app's life.

    With `takeover_delay_s`, this process's relay leads only once it has seen no other relay lead
    for that long: a relay of last resort."""

    async def run(app: web.Application, stop: asyncio.Event) -> None:
        settings = app[COMMON_SETTINGS]
        relay = OutboxRelay(
            app[POOL],
            app[REDIS],
            settings.outbox,
            listen_dsn=settings.database.url,
            application_name=f"{app.get(SERVICE_NAME, 'paystream')} outbox relay",
            takeover_delay_s=takeover_delay_s,
            layout=settings.streams,
        )
        await relay.run(stop)

    return background("outbox-relay", run)


def stream_consumer(
    config: ConsumerConfig, handler_factory: Callable[[web.Application], Handler]
) -> CleanupContext:
    """Run a consumer group member for the app's life; on shutdown it drains in-flight handlers."""

    async def run(app: web.Application, stop: asyncio.Event) -> None:
        consumer = StreamConsumer(app[REDIS], config, handler_factory(app))
        await consumer.run(stop)

    name = f"consumer:{config.group}:{'+'.join(config.streams)}"
    return background(name, run, grace_s=config.shutdown_grace_s + 5)


class ServiceSettings(Protocol):
    """What `run_service` needs of a service's settings."""

    @property
    def common(self) -> CommonSettings: ...

    @property
    def port(self) -> int: ...

    @property
    def host(self) -> str: ...


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def run_service(
    name: str,
    load_settings: Callable[[], SettingsT],
    build_app: Callable[[SettingsT], web.Application],
    *,
    shutdown_timeout: float = 15.0,
) -> None:
    """A service's `main()`: settings from the environment (a bad one stops it with one line naming
    the variable, exit 2), logging, then the app until SIGTERM/SIGINT."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log, service=name)
    for notice in settings.common.notices:
        get_logger(__name__).warning("settings.notice", notice=notice)
    serve(build_app(settings), port=settings.port, host=settings.host, shutdown_timeout=shutdown_timeout)
