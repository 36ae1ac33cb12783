"""Several processes of every service on one Redis and one PostgreSQL, coordinated by nothing else,
each on ports of its own; and what a test reads of each replica: its `/metrics`, the stream entries
its consumers hold, and whether it leads the outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import psutil
import redis.asyncio as aioredis
from platform_stack import FAST_RECOVERY, SERVICES, Spawn, Stack
from prometheus_client.parser import text_string_to_metric_families

from paystream.outbox import LEADER_LOCK_HOLDER, RELAY_LEADER_KEY, advisory_lock_ids
from paystream_devstack.embedded import free_port
from paystream_devstack.testing import ServiceProcess
from paystream_devstack.testing.platform import PORT_VARIABLE, service_url

REPLICAS = 2

# The client port of the session that holds the relay's leader lock (its process is the leader).
LEADER_CLIENT_PORT = f"SELECT client_port FROM pg_stat_activity WHERE pid IN ({LEADER_LOCK_HOLDER})"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Replica:
    """One process of a service: `index` among its service's replicas."""

    service: str
    index: int
    process: ServiceProcess

    @property
    def name(self) -> str:
        return f"{self.service}[{self.index}]"

    @property
    def url(self) -> str:
        return service_url(self.process.env, self.service)

    @property
    def alive(self) -> bool:
        return self.process.process is not None and self.process.process.poll() is None

    async def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of the replica's `/metrics`: (name, labels, value)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"{self.url}/metrics") as response,
        ):
            assert response.status == 200, f"{self.name} /metrics: {response.status}"
            text = await response.text()
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
        return sum(
            value
            for sample, found, value in await self.metrics()
            if sample == name and all(found.get(key) == wanted for key, wanted in labels.items())
        )

    async def consumers(self, redis: aioredis.Redis, stream: str, group: str) -> list[str]:
        """The names of this process's consumers in the group (`paystream.consumer`'s names hold the
        process id: `<group>-<host>-<pid>-<random>`)."""
        marker = f"-{self.process.pid}-"
        return [
            name
            for consumer in await redis.xinfo_consumers(stream, group)
            if (name := _text(consumer["name"])).startswith(group) and marker in name
        ]

    async def pending_entries(self, redis: aioredis.Redis, stream: str, group: str) -> set[str]:
        """The stream entries this process's consumers have read and not acknowledged."""
        held: set[str] = set()
        for consumer in await self.consumers(redis, stream, group):
            entries = await redis.xpending_range(
                stream, group, min="-", max="+", count=10_000, consumername=consumer
            )
            held |= {_text(entry["message_id"]) for entry in entries}
        return held

    def uses_local_port(self, port: int) -> bool:
        if not self.alive:
            return False
        try:
            connections = psutil.Process(self.process.pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            return False
        return any(connection.laddr and connection.laddr.port == port for connection in connections)


@dataclass
class ReplicaSet:
    env: dict[str, str]
    replicas: list[Replica]

    def of(self, service: str) -> list[Replica]:
        return [replica for replica in self.replicas if replica.service == service]

    def stack(self) -> Stack:
        """The first replica of each service, as the single-process fault tests see a platform."""
        return Stack(self.env, {service: self.of(service)[0].process for service in SERVICES})

    async def relay_leader(self, pool: asyncpg.Pool) -> Replica | None:
        """The replica whose relay holds the leader lock (None while no one leads)."""
        port = await pool.fetchval(LEADER_CLIENT_PORT, *advisory_lock_ids(RELAY_LEADER_KEY))
        if port is None:
            return None
        assert port > 0, "the relay leader's session is not over TCP: give the services a TCP DATABASE_URL"
        for replica in self.replicas:
            if await asyncio.to_thread(replica.uses_local_port, port):
                return replica
        return None

    def logs(self) -> str:
        return "\n".join(f"--- {r.name}\n{r.process.tail(15)}" for r in self.replicas)


async def start_replicas(
    spawn: Spawn,
    env: Mapping[str, str],
    count: int = REPLICAS,
    services: Sequence[str] = SERVICES,
    **overrides: str,
) -> ReplicaSet:
    """`count` processes of each service, all at once; each but the first of a service on a port of
    its own. Waits until every one is healthy."""
    # Eight processes at the default pool size could open 320 sessions; CI's PostgreSQL allows 100
    # for the whole suite (the test saw about 37 at its peak).
    merged = {**env, **FAST_RECOVERY, "DATABASE_POOL_MAX": "6", **overrides}
    replicas = []
    for service in services:
        for index in range(count):
            port = {} if index == 0 else {PORT_VARIABLE[service]: str(free_port())}
            process = spawn(service, {**merged, **port}, wait_healthy=False)
            replicas.append(Replica(service, index, process))
    await asyncio.gather(*(asyncio.to_thread(r.process.wait_healthy, 60) for r in replicas))
    return ReplicaSet(merged, replicas)
