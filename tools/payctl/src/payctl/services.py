"""Probing the services' `/health` endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import orjson


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    name: str
    url: str
    # "up": 200; "degraded": answered with another status (503 names the store that is down);
    # "down": no answer.
    state: str
    detail: str


async def probe_services(urls: Mapping[str, str], timeout_s: float) -> list[ServiceHealth]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return list(await asyncio.gather(*(_probe(session, name, url) for name, url in urls.items())))


async def _probe(session: aiohttp.ClientSession, name: str, base_url: str) -> ServiceHealth:
    url = f"{base_url}/health"
    try:
        async with session.get(url, allow_redirects=False) as response:
            body = await response.read()
    except aiohttp.ClientConnectorError as exc:
        return ServiceHealth(name, url, "down", f"cannot connect: {exc.os_error.strerror or exc.os_error}")
    except TimeoutError:
        return ServiceHealth(name, url, "down", "no answer in time")
    except (aiohttp.ClientError, OSError) as exc:
        return ServiceHealth(name, url, "down", " ".join(str(exc).split()) or type(exc).__name__)
    if response.status == 200:
        return ServiceHealth(name, url, "up", "ok")
    return ServiceHealth(name, url, "degraded", f"HTTP {response.status}{_down_stores(body)}")


def _down_stores(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    down = [key for key in ("database", "redis") if parsed.get(key) == "down"]
    return f" ({', '.join(down)} down)" if down else ""
