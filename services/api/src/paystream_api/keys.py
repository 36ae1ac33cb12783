"""Every web.AppKey of the API, in one place."""

from __future__ import annotations

from aiohttp import web

from paystream.ratelimit import RateLimiter
from paystream_api.settings import ApiSettings

SETTINGS = web.AppKey("api_settings", ApiSettings)
# Failed dashboard sign-ins per client address (paystream_api.frontend.dashboard.signin).
SIGNIN_THROTTLE = web.AppKey("signin_throttle", RateLimiter)
