"""Running the bench's own small HTTP servers (the bare baseline and the merchant receiver)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import uvloop
from aiohttp import web


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def serve_on_port_arg(module: str, argv: list[str], create_app: Callable[[], web.Application]) -> int:
    """`python -m <module> PORT`: serve the app on 127.0.0.1:PORT under uvloop until a signal."""
    if len(argv) != 1:
        print(f"usage: python -m {module} PORT", file=sys.stderr)
        return 2
    web.run_app(
        create_app(),
        host="127.0.0.1",
        port=int(argv[0]),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
    return 0
