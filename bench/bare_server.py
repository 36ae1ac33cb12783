"""The bare limit: an aiohttp handler on uvloop that reads the body and answers 200, nothing else.

    python -m bench.bare_server PORT

Driven by the same load generator as the platform, in the same run, it is the denominator of
`ingest_ratio` and `create_payment_ratio`: what this machine, this Python and aiohttp can do at all.
"""

from __future__ import annotations

import sys

from aiohttp import web

from bench.serving import health, serve_on_port_arg

OK_BODY = b'{"status":"ok"}'


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=OK_BODY, content_type="application/json")


def create_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_post("/{tail:.*}", accept)
    return app


def main(argv: list[str]) -> int:
    return serve_on_port_arg("bench.bare_server", argv, create_app)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
