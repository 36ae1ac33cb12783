"""A merchant's webhook endpoint for tests: a real aiohttp server on a loopback port that records
every request and checks both signature schemes itself (written from the contract and the Standard
Webhooks spec, independently of the dispatcher's signing code)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer


def standard_webhooks_key(secret: str) -> bytes:
    """Written from the spec, independently of the dispatcher's signing module."""
    encoded = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return encoded.encode()


@dataclass
class ReceivedRequest:
    body: bytes
    headers: Mapping[str, str]
    received_at: float  # time.time()
    legacy_valid_for: list[str] = field(default_factory=list)
    standard_valid_for: list[str] = field(default_factory=list)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> str:
        return str(self.json()["event"])

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


Behaviour = Callable[[ReceivedRequest, int], Awaitable[web.StreamResponse]]


async def always_ok(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
    return web.Response(text="ok")


class Receiver:
    """A merchant endpoint: records every request and checks both signature schemes against the
    secrets it knows. `behaviour(request, n)` answers the n-th request (1-based)."""

    def __init__(self, secrets: list[str], behaviour: Behaviour = always_ok) -> None:
        self.secrets = secrets
        self.behaviour = behaviour
        self.requests: list[ReceivedRequest] = []
        self.release = asyncio.Event()  # set at teardown: frees handlers that hang on purpose
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/hooks"))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        self.release.set()
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = ReceivedRequest(body=body, headers=dict(request.headers), received_at=time.time())
        self._verify(received)
        self.requests.append(received)
        return await self.behaviour(received, len(self.requests))

    def _verify(self, received: ReceivedRequest) -> None:
        headers = received.headers
        for secret in self.secrets:
            expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, headers.get("X-Webhook-Signature", "")):
                received.legacy_valid_for.append(secret)
            signed = (
                f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + received.body
            )
            digest = hmac.new(standard_webhooks_key(secret), signed, hashlib.sha256).digest()
            candidate = "v1," + base64.b64encode(digest).decode()
            if any(
                hmac.compare_digest(candidate, s) for s in headers.get("webhook-signature", "").split(" ")
            ):
                received.standard_valid_for.append(secret)

    def for_event(self, event_type: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.event == event_type]
