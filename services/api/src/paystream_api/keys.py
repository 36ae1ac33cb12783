"""Every web.AppKey of the API, in one place."""

from __future__ import annotations

from aiohttp import web

from paystream_api.settings import ApiSettings

SETTINGS = web.AppKey("api_settings", ApiSettings)
