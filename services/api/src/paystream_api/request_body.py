"""Reading merchant API request bodies: at most 64 KB, JSON objects only, no control characters.

The app accepts up to 1 MB (provider webhooks need it); merchant endpoints refuse more than 64 KB
themselves, first from `Content-Length` and again while reading, so a chunked body cannot slip past.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from paystream.errors import BadRequestError, PayloadTooLargeError, ValidationError
from paystream.inputs import first_unclean_string

MAX_MERCHANT_BODY_BYTES = 64 * 1024
READ_CHUNK_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class JsonBody:
    """A parsed JSON object and its canonical bytes (sorted keys), for idempotency fingerprints."""

    fields: dict[str, Any]
    canonical: bytes


async def read_raw_body(request: web.Request, limit: int = MAX_MERCHANT_BODY_BYTES) -> bytes:
    """The request body, or 413 when it exceeds `limit` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"request body exceeds {limit // 1024} KB")
    body = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body exceeds {limit // 1024} KB")
    return bytes(body)


def parse_json_object(raw: bytes, *, allow_empty: bool = False) -> JsonBody:
    """The body as a JSON object: 400 when it is not JSON or not an object."""
    if not raw.strip():
        if allow_empty:
            return JsonBody(fields={}, canonical=b"{}")
        raise BadRequestError("the request body must be a JSON object")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequestError("the request body must be a JSON object")
    unclean = first_unclean_string(parsed)
    if unclean is not None:
        # Before any field is read: no key or value can carry a NUL to PostgreSQL or a log line.
        raise ValidationError(f"{unclean} must not contain control characters", field=unclean)
    return JsonBody(fields=parsed, canonical=orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS))


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> JsonBody:
    return parse_json_object(await read_raw_body(request), allow_empty=allow_empty)
