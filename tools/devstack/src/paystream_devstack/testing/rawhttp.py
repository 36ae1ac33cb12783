"""HTTP/1.1 requests with header bytes exactly as given: what a client library would refuse to send
(bytes that are not UTF-8, control characters, oversized headers), as an attacker sends them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


async def raw_request(
    host: str,
    port: int,
    method: str,
    path: bytes | str,
    headers: Sequence[tuple[bytes | str, bytes | str]] = (),
    body: bytes = b"",
    *,
    timeout: float = 10.0,
) -> RawResponse:
    """Send one request on a fresh connection and read the whole answer (the server closes it)."""

    def raw(value: bytes | str) -> bytes:
        return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")

    lines = [raw(method) + b" " + raw(path) + b" HTTP/1.1", b"Host: " + raw(host), b"Connection: close"]
    lines += [raw(name) + b": " + raw(value) for name, value in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(timeout):
            answer = await reader.read()
    finally:
        writer.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), parsed, content)
