"""Reading a provider webhook's raw body, at most 1 MB, before anything else looks at it."""

from __future__ import annotations

from aiohttp import web

from paystream.errors import PayloadTooLargeError

MAX_PROVIDER_BODY_BYTES = 1024 * 1024


async def read_webhook_body(request: web.Request, limit: int = MAX_PROVIDER_BODY_BYTES) -> bytes:
    """The exact bytes the provider sent (signatures cover them), or 413 past `limit`.

    Read from the stream directly rather than with `request.read()`, so the limit is this feature's
    own and not the app-wide `client_max_size`."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"webhook body exceeds {limit // 1024} KB")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLargeError(f"webhook body exceeds {limit // 1024} KB")
    return bytes(body)
