"""The whole platform as real processes (API, payment processor, webhook dispatcher, notifier), the
merchant's webhook configuration, and a frontend watching payments settle over Socket.IO."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from load import AUTH

from paystream_devstack.testing import ServiceProcess, eventually
from paystream_devstack.testing.notifier_client import Client, Received, make_token, open_client
from paystream_devstack.testing.platform import API, DISPATCHER, NOTIFIER, PROCESSOR, Platform

SERVICES = (API, PROCESSOR, DISPATCHER, NOTIFIER)
MERCHANT_ID = "mer_test0000000001"
WEBHOOK_SECRET = "whsec_test_abc123"
ENDPOINTS_PATH = "/api/v1/webhook-endpoints"

# Recovery deadlines short enough for a bounded test. Each keeps the rule that a stream entry (or a
# delivery's lease) is taken over only after the longest its handler or HTTP attempt may run.
FAST_RECOVERY = {
    "PROCESSOR_HANDLER_TIMEOUT_S": "3",
    "PROCESSOR_RECLAIM_IDLE_MS": "5000",
    "DISPATCHER_HANDLER_TIMEOUT_S": "3",
    "DISPATCHER_RECLAIM_IDLE_MS": "5000",
    "WEBHOOK_HTTP_TIMEOUT_S": "2",
    "WEBHOOK_LEASE_S": "7",
}

Spawn = Callable[..., ServiceProcess]


class Stack(Platform):
    """The platform, and what the fault tests do through its API."""

    async def configure_webhook(self, url: str) -> dict[str, object]:
        async with (
            aiohttp.ClientSession() as http,
            http.put(f"{self.api_url}/api/v1/webhooks/config", json={"url": url}, headers=AUTH) as response,
        ):
            assert response.status == 200, await response.text()
            config: dict[str, object] = await response.json()
            return config

    async def call_api(
        self, method: str, path: str, expected: int, body: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        """One merchant API call; fails unless it is answered `expected`. Returns the JSON body."""
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.api_url}{path}", json=body, headers=AUTH) as response,
        ):
            assert response.status == expected, f"{method} {path}: {response.status} {await response.text()}"
            document: dict[str, Any] = await response.json()
            return document

    async def create_endpoint(self, url: str, **fields: object) -> dict[str, Any]:
        """`POST /api/v1/webhook-endpoints`: a further endpoint, with a secret of its own."""
        return await self.call_api("POST", ENDPOINTS_PATH, 201, {"url": url, **fields})

    async def default_endpoint(self) -> dict[str, Any]:
        """The endpoint `PUT /api/v1/webhooks/config` manages, as `/api/v1/webhook-endpoints` lists it."""
        listed = await self.call_api("GET", ENDPOINTS_PATH, 200)
        defaults: list[dict[str, Any]] = [endpoint for endpoint in listed["data"] if endpoint["is_default"]]
        assert len(defaults) == 1, listed
        return defaults[0]


async def start_stack(
    spawn: Spawn, env: Mapping[str, str], services: Sequence[str] = SERVICES, **overrides: str
) -> Stack:
    """Start the services at once (they do not depend on each other to start) and wait for all."""
    merged = {**env, **FAST_RECOVERY, **overrides}
    processes = {service: spawn(service, merged, wait_healthy=False) for service in services}
    await asyncio.gather(*(asyncio.to_thread(p.wait_healthy, 60) for p in processes.values()))
    return Stack(merged, processes)


@dataclass
class PaymentWatcher:
    """A frontend on the notifier: merchant token, subscribed to the load's invoices. When its
    socket drops it reconnects with the id and name of the last packet it saw (`lastEventId`,
    `lastEventName`), so that it catches up on what it missed, and subscribes again."""

    url: str
    invoices: Sequence[str]
    clients: list[Client] = field(default_factory=list)

    async def connect(self) -> None:
        last = self.last_packet()
        last_event_id, last_event_name = (None, None) if last is None else (last.data["eventId"], last.name)
        client = await open_client(
            self.url,
            token=make_token(MERCHANT_ID),
            last_event_id=last_event_id,
            last_event_name=last_event_name,
        )
        self.clients.append(client)
        for invoice_id in self.invoices:
            ack = await client.subscribe(invoice_id, last_event_id, last_event_name)
            assert ack == {"ok": True}, f"subscribing to {invoice_id}: {ack}"

    async def reconnect_after_drop(self, timeout: float = 20.0) -> None:
        """Once the current socket has dropped, connect again (call it when the notifier is back)."""
        current = self.clients[-1]
        await eventually(lambda: current.disconnects > 0, timeout=timeout, message="the socket dropped")
        await current.close()
        await self.connect()

    def last_packet(self) -> Received | None:
        """The last packet with an event id, across every connection: where a reconnect resumes."""
        for client in reversed(self.clients):
            last = client.last_packet()
            if last is not None:
                return last
        return None

    def completions(self) -> Counter[str]:
        """paymentId -> how many `payment:completed` arrived for it, across every connection."""
        return Counter(data["paymentId"] for c in self.clients for data in c.events("payment:completed"))

    def catch_ups(self) -> list[Any]:
        """The `catchup:complete` summaries the notifier sent, across every connection."""
        return [summary for client in self.clients for summary in client.events("catchup:complete")]

    def completion_event_ids(self) -> list[str]:
        return [event_id for c in self.clients for event_id in c.event_ids("payment:completed")]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
