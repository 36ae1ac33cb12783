"""The bare limit: an aiohttp handler on uvloop that reads the body and answers 200, nothing else.

    python -m bench.bare_server PORT

Driven by the same load generator as the platform, in the same run, it is the denominator of
`ingest_ratio` and `create_payment_ratio`: what this machine, this Python and aiohttp can do at all.
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

OK_BODY = b'{"status":"ok"}'


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=OK_BODY, content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_post("/{tail:.*}", accept)
    return app


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.bare_server PORT", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
