"""The Socket.IO endpoint, counted: how many WebSocket and long-poll requests are still running.

A drain has closed every socket only when their requests have ended (the clients answered the
close), so it waits for this count to reach zero rather than for a fixed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import socketio  # type: ignore[import-untyped]
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TransportRequests:
    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def counted(self, handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.active += 1
            self._idle.clear()
            try:
                return await handler(request)
            finally:
                self.active -= 1
                if self.active == 0:
                    self._idle.set()

        return handle

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request is running; False if some still are after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def add_socketio_routes(app: web.Application, sio: socketio.AsyncServer, requests: TransportRequests) -> None:
    """What `sio.attach(app, socketio_path="socket.io")` does, with every request counted."""
    handler = requests.counted(sio.handle_request)
    for method in ("GET", "POST", "OPTIONS"):
        app.router.add_route(method, "/socket.io/", handler)
