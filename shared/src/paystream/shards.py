"""Stream shards: which Redis key holds a logical stream's entries, and which shard an event goes to.

Each logical stream (`paystream.events.Stream`) is `STREAM_SHARDS` (N) shard streams. With N = 1 the
one shard keeps the stream's own name (`payment:events`, dead letters at `payment:events:dlq`), so a
deployment that does not shard sees no change. With N > 1 shard i is `payment:events:{i}` and its
dead letters `payment:events:{i}:dlq`: the `{i}` is a Redis Cluster hash tag, so a shard's stream and
its DLQ live in one slot (on one master), and the shards spread over the cluster. (There is no
delayed set: retries wait in PostgreSQL and in the consumer, not in Redis.)

An event's shard is a stable hash, the same in every process and every release (CRC-32, as in
`binascii`): an event with an ordering key (`paystream.ordering`, the payment it belongs to) by its
merchant and key, so all events of one payment share a shard and keep their order; an event without
one (a webhook test send, a downtime notice, an invoice's own event) by its event id, which spreads
them evenly (they promise no order). Changing N on a live deployment would move payments to other
shards mid-life: drain first (see the README).
"""

from __future__ import annotations

import re
from binascii import crc32
from dataclasses import dataclass

from paystream.errors import SettingsError
from paystream.events import Stream

SHARDS_VARIABLE = "STREAM_SHARDS"
# Far below Redis Cluster's 16384 slots; every shard costs each consumer two loops.
MAX_SHARDS = 256

_SHARD_KEY = re.compile(r"^(?P<stream>.+):\{(?P<shard>\d+)\}$")


def shard_key(stream: str, shard: int, shards: int) -> str:
    """The Redis key of `stream`'s shard `shard` of `shards`."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
    return str(stream) if shards == 1 else f"{stream}:{{{shard}}}"


def logical_stream(key: str) -> str:
    """The logical stream a shard key belongs to (a plain stream name is its own)."""
    match = _SHARD_KEY.match(key)
    return match["stream"] if match else key


def shard_of_key(key: str) -> int:
    """The shard number in a shard key; 0 for an unsharded stream's own name."""
    match = _SHARD_KEY.match(key)
    return int(match["shard"]) if match else 0


def shard_index(shards: int, merchant_id: str | None, ordering_key: str | None, event_id: str) -> int:
    """The shard of an event: by (merchant, ordering key) when it keeps an order, else by its id."""
    if shards == 1:
        return 0
    basis = f"{merchant_id or ''}\x1f{ordering_key}" if ordering_key is not None else str(event_id)
    return crc32(basis.encode()) % shards


@dataclass(frozen=True, slots=True)
class StreamLayout:
    """How many shards every logical stream has (`STREAM_SHARDS`), and their keys."""

    shards: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= MAX_SHARDS:
            raise SettingsError(f"{SHARDS_VARIABLE} must be between 1 and {MAX_SHARDS}, got {self.shards}")

    def keys(self, stream: str) -> tuple[str, ...]:
        """Every shard key of `stream`, shard 0 first."""
        return tuple(shard_key(stream, shard, self.shards) for shard in range(self.shards))

    def key_for(self, stream: str, merchant_id: str | None, ordering_key: str | None, event_id: str) -> str:
        """The shard key an event of `stream` is published to."""
        return shard_key(stream, shard_index(self.shards, merchant_id, ordering_key, event_id), self.shards)

    def bus_keys(self) -> tuple[str, ...]:
        """The shard keys of every stream of the bus, stream by stream."""
        return tuple(key for stream in Stream for key in self.keys(stream.value))


SINGLE_SHARD = StreamLayout()
