"""`GET /demo`: a merchant's shop page that embeds the SDK, for trying the checkout by hand, and
`POST /demo/orders`, which stands in for that merchant's backend: it creates an order for the seeded
test merchant, as a real merchant's server does with its secret (`POST /api/v1/orders`), and hands
the page the order id and the public key.

Both exist only with TEST_MODE and SEED_TEST_DATA on (`make run`, docker-compose); elsewhere they
answer 404, so no deployment ever creates orders for anyone without the secret.
"""

from __future__ import annotations

from aiohttp import web

from paystream.errors import NotFoundError
from paystream.ratelimit import RateLimitedError
from paystream.web import POOL, json_response
from paystream_api import validation
from paystream_api.auth import client_address
from paystream_api.frontend.assets import page
from paystream_api.frontend.security import PageKind
from paystream_api.keys import SETTINGS
from paystream_api.orders import insert_order, parse_new_order
from paystream_api.public_api.access import PUBLIC_THROTTLE
from paystream_api.request_body import read_json_object
from paystream_api.seed import TEST_API_KEY, TEST_MERCHANT_ID
from paystream_api.settings import ApiSettings

DEMO_PAGE = "demo/index.html"
DEMO_ORDER_FIELDS = frozenset({"amount", "receipt", "return_url"})


def demo_enabled(settings: ApiSettings) -> bool:
    return settings.common.test_mode.enabled and settings.seed_test_data


def _require_demo(request: web.Request) -> None:
    if not demo_enabled(request.app[SETTINGS]):
        raise NotFoundError("the demo runs only with TEST_MODE and SEED_TEST_DATA on", field="path")


async def demo_page(request: web.Request) -> web.Response:
    _require_demo(request)
    return page(request, DEMO_PAGE, PageKind.PRIVATE)


async def create_demo_order(request: web.Request) -> web.Response:
    """201 `{order_id, key, amount, currency}`: an INR order of the test merchant."""
    _require_demo(request)
    # Counted with the checkout's payments: creating orders is the demo's way to start paying.
    wait = request.app[PUBLIC_THROTTLE].payments.per_address.check_and_hit(client_address(request))
    if wait is not None:
        raise RateLimitedError("too many demo orders from this address; retry later", retry_after_s=wait)
    body = await read_json_object(request)
    validation.reject_unknown(body.fields, DEMO_ORDER_FIELDS)
    new_order = parse_new_order(body.fields)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        order = await insert_order(conn, TEST_MERCHANT_ID, new_order)
    answer = {
        "order_id": order["id"],
        "key": TEST_API_KEY,
        "amount": order["amount"],
        "currency": order["currency"],
    }
    return json_response(answer, status=201, headers={"Cache-Control": "no-store"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/demo", demo_page)
    app.router.add_post("/demo/orders", create_demo_order)
