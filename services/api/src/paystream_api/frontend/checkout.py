"""The payer's side: the embeddable SDK (`GET /checkout.js`) and the hosted checkout page
(`GET /checkout?order_id=&key=[&embedded=true]`), which any site may frame.

The page is static: its script reads the query and calls the public endpoints
(`paystream_api.public_api`) with the key.
"""

from __future__ import annotations

from aiohttp import web

from paystream_api.frontend.assets import asset_response, page
from paystream_api.frontend.security import PageKind

SDK_FILE = "checkout.js"
CHECKOUT_PAGE = "checkout/index.html"
# Merchants' sites load the SDK from another origin: with `crossorigin` (for Subresource
# Integrity) that needs CORS, and a site that isolates itself (COEP) needs CORP to load it at all.
SDK_HEADERS = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}


async def sdk(_request: web.Request) -> web.Response:
    response = asset_response(SDK_FILE)
    response.headers.update(SDK_HEADERS)
    return response


async def checkout_page(request: web.Request) -> web.Response:
    return page(request, CHECKOUT_PAGE, PageKind.CHECKOUT)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/checkout.js", sdk)
    app.router.add_get("/checkout", checkout_page)
