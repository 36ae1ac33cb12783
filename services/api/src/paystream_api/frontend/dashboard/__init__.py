"""The merchant dashboard (`/dashboard`): sign-in and sessions, its pages, and the few endpoints it
needs that the merchant API lacks (a payment's timeline, totals and chart series, the streams
figures). Everything else the dashboard shows comes from the merchant API's own endpoints, called
with the session cookie (`paystream_api.sessions`).
"""

from __future__ import annotations

from aiohttp import web

from paystream_api.frontend.dashboard import pages, signin, stats, streams, timeline


def setup_routes(app: web.Application) -> None:
    signin.setup_routes(app)
    timeline.setup_routes(app)
    stats.setup_routes(app)
    streams.setup_routes(app)
    pages.setup_routes(app)
