"""The public checkout endpoints: what a payer's browser may call with only the merchant's public key.

- `GET /api/v1/public/orders/{order_id}?key=`: the order as the hosted checkout shows it (merchant
  name, amount, currency, status, receipt, return link) and a notifier token for that order alone;
- `POST /api/v1/public/payments?key=` `{order_id, method, vpa | card}`: a payment for an existing
  order of the key's merchant that is not paid, with the merchant API's validation and
  Idempotency-Key semantics (amount and currency come from the order);
- `GET /api/v1/public/payments/{payment_id}?key=`: a checkout payment's status (the polling
  fallback when the notifier cannot be reached).

Every call is rate-limited per client address and per key (`access`); nothing here ever shows an
order's notes, the merchant's other objects, or anything a secret protects.
"""

from __future__ import annotations

from aiohttp import web

from paystream_api.keys import SETTINGS
from paystream_api.public_api.access import PUBLIC_THROTTLE, PublicThrottle
from paystream_api.public_api.handlers import (
    create_checkout_payment,
    get_checkout_order,
    get_checkout_payment,
)


def setup_routes(app: web.Application) -> None:
    app[PUBLIC_THROTTLE] = PublicThrottle.per_minute(app[SETTINGS].public_limits)
    app.router.add_get("/api/v1/public/orders/{order_id}", get_checkout_order)
    app.router.add_post("/api/v1/public/payments", create_checkout_payment)
    app.router.add_get("/api/v1/public/payments/{payment_id}", get_checkout_payment)
