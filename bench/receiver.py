"""The merchant's webhook endpoint: verifies each delivery's signature and counts webhook-ids.

    python -m bench.receiver PORT

- `POST /hooks`: the dispatcher's deliveries; `POST /baseline`: the raw client's posts. Both are
  handled identically (read, verify `X-Webhook-Signature`, parse, record) and counted apart.
- `POST /_bench/secret` {"secret"}: the merchant's webhook secret, set by the harness.
- `GET /_bench/stats?bucket=hooks&prefix=pay_x`: for the events whose payment id starts with
  `prefix`: how many distinct events arrived, under how many webhook-ids, how many arrived under
  more than one id (duplicates), redeliveries of one id, bad signatures, and the first and last
  arrival times (CLOCK_MONOTONIC, comparable with the harness's).

An event is `(event type, data.payment.id)`: one event delivered under two different webhook-ids is
a duplicate the merchant would act on twice; one webhook-id seen twice is a redelivery, which the
Standard Webhooks contract allows (receivers de-duplicate on the id).
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from bench.serving import health, serve_on_port_arg


@dataclass(slots=True)
class Bucket:
    requests: int = 0
    bad_signatures: int = 0
    unreadable: int = 0
    ids_seen: Counter[str] = field(default_factory=Counter)
    # event key -> (webhook-ids it arrived under, first arrival)
    events: dict[tuple[str, str], tuple[set[str], float]] = field(default_factory=dict)


@dataclass(slots=True)
class Receiver:
    secret: bytes = b""
    buckets: dict[str, Bucket] = field(default_factory=lambda: {"hooks": Bucket(), "baseline": Bucket()})

    def record(self, bucket_name: str, body: bytes, webhook_id: str, signature: str) -> bool:
        """Count one request; False when its signature does not verify."""
        bucket = self.buckets[bucket_name]
        bucket.requests += 1
        expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            bucket.bad_signatures += 1
            return False
        try:
            document = orjson.loads(body)
            key = (str(document["event"]), str(document["data"]["payment"]["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            bucket.unreadable += 1
            return True
        bucket.ids_seen[webhook_id] += 1
        seen = bucket.events.get(key)
        if seen is None:
            bucket.events[key] = ({webhook_id}, time.monotonic())
        else:
            seen[0].add(webhook_id)
        return True

    def stats(self, bucket_name: str, prefix: str) -> dict[str, Any]:
        bucket = self.buckets[bucket_name]
        matching = [
            (ids, at)
            for (_type, payment_id), (ids, at) in bucket.events.items()
            if payment_id.startswith(prefix)
        ]
        arrivals = [at for _ids, at in matching]
        return {
            "requests": bucket.requests,
            "bad_signatures": bucket.bad_signatures,
            "unreadable": bucket.unreadable,
            "redelivered_ids": sum(1 for count in bucket.ids_seen.values() if count > 1),
            "events": len(matching),
            "webhook_ids": sum(len(ids) for ids, _at in matching),
            "events_under_several_ids": sum(1 for ids, _at in matching if len(ids) > 1),
            "first_at": min(arrivals) if arrivals else None,
            "last_at": max(arrivals) if arrivals else None,
        }


RECEIVER = web.AppKey("receiver", Receiver)


def delivery_handler(bucket_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        verified = request.app[RECEIVER].record(
            bucket_name,
            body,
            request.headers.get("webhook-id", ""),
            request.headers.get("X-Webhook-Signature", ""),
        )
        return web.Response(status=200 if verified else 401, text="ok" if verified else "bad signature")

    return handle


async def set_secret(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    request.app[RECEIVER].secret = str(body["secret"]).encode()
    return web.Response(text="ok")


async def stats(request: web.Request) -> web.Response:
    bucket = request.query.get("bucket", "hooks")
    if bucket not in request.app[RECEIVER].buckets:
        raise web.HTTPNotFound()
    body = request.app[RECEIVER].stats(bucket, request.query.get("prefix", ""))
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def create_app() -> web.Application:
    app = web.Application()
    app[RECEIVER] = Receiver()
    app.router.add_post("/hooks", delivery_handler("hooks"))
    app.router.add_post("/baseline", delivery_handler("baseline"))
    app.router.add_post("/_bench/secret", set_secret)
    app.router.add_get("/_bench/stats", stats)
    app.router.add_get("/health", health)
    return app


def main(argv: list[str]) -> int:
    return serve_on_port_arg("bench.receiver", argv, create_app)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
