"""Every web.AppKey of the notifier, in one place."""

from __future__ import annotations

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from notifier.fanout import Hub
from notifier.settings import NotifierSettings
from notifier.transports import TransportRequests

SETTINGS = web.AppKey("notifier_settings", NotifierSettings)
SIO = web.AppKey("socketio_server", socketio.AsyncServer)
HUB = web.AppKey("hub", Hub)
TRANSPORT_REQUESTS = web.AppKey("transport_requests", TransportRequests)
