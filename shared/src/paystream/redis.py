"""The Redis client every service uses: bytes in, bytes out, keep-alive, and a read timeout longer
than any BLOCK read, so a reply that never comes (a silently dropped connection) is noticed and the
command retried on a new connection instead of waiting forever.

With `REDIS_CLUSTER=true` it is redis-py's cluster client (`redis.asyncio.cluster.RedisCluster`),
with the same timeouts and retries: `REDIS_URL` names any node, the client learns the slots and
follows MOVED redirections and failovers (a refused or dropped node makes it reload the topology
before its retry). Every command the platform sends names one key, or is a non-transactional
pipeline (which the cluster client splits by node), so it works unchanged on a cluster: see the
README's Redis Cluster section for the audit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from paystream.settings import RedisSettings

# Longer than the longest BLOCK any reader uses (1 s), far shorter than TCP's own give-up time.
SOCKET_TIMEOUT_S = 5.0

# Errors that mean "Redis is not reachable right now" (retry with backoff), not a bad command. On a
# cluster, that includes a failover in progress: CLUSTERDOWN, TRYAGAIN, and a slot no reachable
# master serves yet (SlotNotCoveredError, a RedisClusterException, as is a failed topology load).
REDIS_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
    ClusterDownError,
    TryAgainError,
    RedisClusterException,
)


class _ReportsResetAsConnectionError(AbstractConnection):
    """uvloop (every service's loop) refuses a write on a transport that the peer has reset with a
    RuntimeError ("the handler is closed"), where asyncio's own loop reports a connection error, and
    redis-py lets it through as it is. Unreported, a reset connection would crash the caller rather
    than be retried on a new one, so report it as the dropped connection it is."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:  # the connection is already closed by then
            raise RedisConnectionError(f"connection lost while writing: {exc}") from exc


class _TcpConnection(_ReportsResetAsConnectionError, Connection):
    pass


class _SslConnection(_ReportsResetAsConnectionError, SSLConnection):
    pass


class _UnixConnection(_ReportsResetAsConnectionError, UnixDomainSocketConnection):
    pass


_RESET_SAFE: dict[type[Any], type[AbstractConnection]] = {
    Connection: _TcpConnection,
    SSLConnection: _SslConnection,
    UnixDomainSocketConnection: _UnixConnection,
}


def reconnecting_retry() -> Retry:
    """Retry a command a few times on a dropped connection (a Redis restart), with short backoff;
    past that the caller's own backoff loop takes over."""
    return Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=3)


def _client_options() -> dict[str, Any]:
    """What the plain and the cluster client are both built with: bytes, keep-alive, timeouts, and
    retries of a dropped connection."""
    return {
        "retry": reconnecting_retry(),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionError],
        "decode_responses": False,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 15,
    }


def create_redis(settings: RedisSettings) -> aioredis.Redis:
    """The client for `settings`: a plain client, or with `cluster` the cluster client (typed as
    the plain one: the platform sends only commands both have, see the module's docstring)."""
    if settings.cluster:
        return _create_cluster(settings)
    client = aioredis.Redis.from_url(settings.url, **_client_options())
    # The URL's scheme chose the connection class (TCP, TLS or a Unix socket): keep it, reset-safe.
    pool = client.connection_pool
    pool.connection_class = _RESET_SAFE.get(pool.connection_class, pool.connection_class)
    return client


def _create_cluster(settings: RedisSettings) -> aioredis.Redis:
    cluster = RedisCluster.from_url(settings.url, **_client_options())
    # The same reset-safe connections as above, for the nodes known now and those found later (the
    # client builds every node from these keyword arguments).
    kwargs = cluster.connection_kwargs
    connection_class = kwargs.get("connection_class", Connection)
    kwargs["connection_class"] = _RESET_SAFE.get(connection_class, connection_class)
    for node in cluster.get_nodes():
        safe = _RESET_SAFE.get(node.connection_class, node.connection_class)
        node.connection_class = cast("type[Connection]", safe)
    return cast(aioredis.Redis, cluster)


# How long a write waits for its replicas (WAIT) before it counts as not yet safe from a failover.
REPLICA_WAIT_MS = 1000


class ReplicasBehind(RedisConnectionError):
    """Writes reached the master but not yet the replicas asked for: retried, as for a Redis that is
    unavailable (a failover now would lose them)."""


def queue_replica_waits(pipe: Any, redis: aioredis.Redis, keys: Iterable[str], wanted: int) -> int:
    """Queue on `pipe`, after its writes to `keys`, a WAIT for `wanted` replicas on the master of
    each key (a cluster) or on the one server; how many WAITs were queued (the pipeline's last
    replies). WAIT counts the replicas holding this connection's writes, so it goes last on each
    node's own connection: a cluster pipeline keeps each node's commands in order."""
    if isinstance(redis, RedisCluster):
        cluster: RedisCluster = redis
        nodes = {node.name: node for node in (cluster.get_node_from_key(key) for key in set(keys))}
        targets: list[dict[str, Any]] = [{"target_nodes": node} for node in nodes.values()]
    else:
        targets = [{}]
    for target in targets:
        pipe.execute_command("WAIT", wanted, REPLICA_WAIT_MS, **target)
    return len(targets)


async def xadd_held_by_replicas(
    redis: aioredis.Redis, key: str, fields: Mapping[Any, Any], *, maxlen: int, wanted: int
) -> tuple[bytes, bool]:
    """XADD one entry (approximate `maxlen`) and, when `wanted`, WAIT for that many replicas on its
    master in the same round trip: the new id, and whether the replicas hold it yet (always True
    when nothing is wanted)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(key, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        waits = queue_replica_waits(pipe, redis, [key], wanted) if wanted else 0
        replies = await pipe.execute()
    try:
        check_replica_waits(replies, waits, wanted, f"the entry on {key}")
    except ReplicasBehind:
        return replies[0], False
    return replies[0], True


def check_replica_waits(replies: list[Any], waits: int, wanted: int, what: str) -> None:
    """`ReplicasBehind` unless each of the pipeline's last `waits` replies (WAIT's count of
    replicas) reached `wanted`."""
    if any(int(acked) < wanted for acked in replies[len(replies) - waits :]):
        raise ReplicasBehind(
            f"fewer than {wanted} replica(s) acknowledged {what} within {REPLICA_WAIT_MS} ms"
        )
