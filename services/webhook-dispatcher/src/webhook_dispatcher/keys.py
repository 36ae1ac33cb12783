"""Every web.AppKey of the webhook dispatcher, in one place."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from webhook_dispatcher.intake import DeliveryIntake
from webhook_dispatcher.recorder import OutcomeRecorder
from webhook_dispatcher.scheduler import Scheduler
from webhook_dispatcher.settings import DispatcherSettings

SETTINGS = web.AppKey("dispatcher_settings", DispatcherSettings)
HTTP_SESSION = web.AppKey("webhook_http_session", aiohttp.ClientSession)
INTAKE = web.AppKey("delivery_intake", DeliveryIntake)
SCHEDULER = web.AppKey("delivery_scheduler", Scheduler)
RECORDER = web.AppKey("outcome_recorder", OutcomeRecorder)
