"""The payment processor: consumer group `payment-processor` on the payment and provider streams."""

from __future__ import annotations

from aiohttp import web

from payment_processor import payments, provider_events
from payment_processor.keys import SETTINGS
from payment_processor.settings import ProcessorSettings
from paystream.consumer import ConsumerConfig, Handler, HandlerRegistry
from paystream.events import Stream
from paystream.service import outbox_relay, stream_consumer
from paystream.web import COMMON_SETTINGS, SERVICE_NAME, add_ops_routes, error_middleware, stores

GROUP = "payment-processor"


def build_handler(_app: web.Application) -> Handler:
    registry = HandlerRegistry()
    registry.merge(payments.registry)
    registry.merge(provider_events.registry)
    return registry


def create_app(settings: ProcessorSettings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_NAME] = "payment-processor"
    app[SETTINGS] = settings
    app[COMMON_SETTINGS] = settings.common
    app.cleanup_ctx.append(stores)
    app.cleanup_ctx.append(outbox_relay())
    config = ConsumerConfig(
        group=GROUP,
        streams=(Stream.PROVIDER_EVENTS_PRIORITY, Stream.PAYMENT_EVENTS, Stream.PROVIDER_EVENTS),
        concurrency=settings.concurrency,
    )
    app.cleanup_ctx.append(stream_consumer(config, build_handler))
    add_ops_routes(app)
    return app
