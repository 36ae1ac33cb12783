"""The payment processor: consumer group `payment-processor` on `payment:events` (the merchant API's
payments and refunds), and the claimer of stored provider events (`provider_events`)."""

from __future__ import annotations

from aiohttp import web

from payment_processor import payments, provider_events
from payment_processor.keys import SETTINGS
from payment_processor.provider_events.retention import provider_event_purge
from payment_processor.settings import ProcessorSettings
from paystream.consumer import ConsumerConfig, Handler, HandlerRegistry
from paystream.events import ConsumerGroup, Stream
from paystream.service import outbox_relay, stream_consumer
from paystream.web import COMMON_SETTINGS, SERVICE_NAME, add_ops_routes, error_middleware, stores


def build_handler(app: web.Application) -> Handler:
    registry = HandlerRegistry()
    registry.merge(payments.build_registry(app))
    return registry


def create_app(settings: ProcessorSettings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_NAME] = "payment-processor"
    app[SETTINGS] = settings
    app[COMMON_SETTINGS] = settings.common
    app.cleanup_ctx.append(stores)
    app.cleanup_ctx.append(outbox_relay())
    app.cleanup_ctx.append(payments.settlement_scheduler())
    app.cleanup_ctx.append(provider_events.provider_event_claimer())
    app.cleanup_ctx.append(provider_event_purge())
    config = ConsumerConfig(
        group=ConsumerGroup.PAYMENT_PROCESSOR,
        streams=settings.common.streams.keys(Stream.PAYMENT_EVENTS),
        concurrency=settings.concurrency,
        handler_timeout_s=settings.handler_timeout_s,
        reclaim_idle_ms=settings.reclaim_idle_ms,
        dead_letter_replicas=settings.common.outbox.wait_replicas,
    )
    app.cleanup_ctx.append(stream_consumer(config, build_handler))
    add_ops_routes(app)
    return app
