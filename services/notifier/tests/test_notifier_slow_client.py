"""A client that stops reading is cut off once its backlog reaches the bound; nobody else waits."""

from __future__ import annotations

from functools import partial

import aiohttp
import orjson
import redis.asyncio as aioredis
import structlog

from paystream_devstack.testing import eventually
from paystream_devstack.testing.notifier_client import (
    MERCHANT_A,
    ClientFactory,
    ServerFactory,
    make_token,
    payment_event,
    publish,
)


class StalledPollingClient:
    """Speaks just enough Engine.IO/Socket.IO over long-polling to connect, then never polls again,
    so everything sent to it piles up on the server."""

    def __init__(self, url: str) -> None:
        self.base = f"{url}/socket.io/?EIO=4&transport=polling"
        self.http = aiohttp.ClientSession()
        self.sid = ""

    async def connect(self, token: str) -> None:
        async with self.http.get(self.base) as handshake:
            body = await handshake.text()
        assert body.startswith("0"), body
        self.sid = orjson.loads(body[1:])["sid"]
        async with self.http.post(
            f"{self.base}&sid={self.sid}", data="40" + orjson.dumps({"token": token}).decode()
        ) as sent:
            assert sent.status == 200
        async with self.http.get(f"{self.base}&sid={self.sid}") as connected:
            assert (await connected.text()).startswith("40"), "the Socket.IO CONNECT answer"

    async def poll_status(self) -> int:
        async with self.http.get(f"{self.base}&sid={self.sid}") as response:
            await response.read()
            return response.status

    async def close(self) -> None:
        await self.http.close()


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def test_a_stalled_client_is_disconnected_and_others_keep_receiving(
    start_notifier: ServerFactory, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    url = await start_notifier(NOTIFIER_MAX_BUFFERED="25")
    healthy = await connect_client(url, token=make_token(MERCHANT_A, sub="healthy"))
    stalled = StalledPollingClient(url)
    try:
        await stalled.connect(make_token(MERCHANT_A, sub="stalled"))
        before = await metric(url, "paystream_notifier_slow_clients_disconnected_total")
        events = [payment_event(invoice_id=f"ord_{n}") for n in range(100)]
        with structlog.testing.capture_logs() as logs:
            await publish(redis, *events)
            await healthy.wait_for_id(events[-1].id)
            await eventually(
                lambda: any(entry["event"] == "socket.slow_client_disconnected" for entry in logs)
            )

        assert healthy.event_ids("payment:status-update") == [event.id for event in events]
        cut_off = next(entry for entry in logs if entry["event"] == "socket.slow_client_disconnected")
        assert cut_off["queued"] >= 25
        assert cut_off["merchant_id"] == MERCHANT_A
        assert await metric(url, "paystream_notifier_slow_clients_disconnected_total") == before + 1
        assert await metric(url, "paystream_notifier_connected_sockets") == 1
        # The transport is closed: what the client finds when it polls again at last.
        await eventually(partial(_closed, stalled))
    finally:
        await stalled.close()


async def _closed(client: StalledPollingClient) -> bool:
    status = await client.poll_status()
    return status == 400 or (status == 200 and await client.poll_status() == 400)
