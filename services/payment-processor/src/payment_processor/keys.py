"""Every web.AppKey of the payment processor, in one place."""

from __future__ import annotations

from aiohttp import web

from payment_processor.settings import ProcessorSettings
from payment_processor.settlement import SettlementScheduler

SETTINGS = web.AppKey("processor_settings", ProcessorSettings)
SCHEDULER = web.AppKey("settlement_scheduler", SettlementScheduler)
