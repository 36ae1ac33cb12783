"""What people see, served by the API: the embeddable SDK (`/checkout.js`), the hosted checkout
(`/checkout`), the demo merchant page (`/demo`) and the merchant dashboard (`/dashboard`).

Plain HTML, CSS and JavaScript files under `static/` (no build step); the pages fetch their data
from the API's JSON endpoints and follow payments live over the notifier.
"""

from __future__ import annotations

from aiohttp import web

from paystream_api.frontend import checkout, dashboard, demo
from paystream_api.frontend.assets import setup_static


def setup_routes(app: web.Application) -> None:
    setup_static(app)
    checkout.setup_routes(app)
    demo.setup_routes(app)
    dashboard.setup_routes(app)
