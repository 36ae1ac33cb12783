"""What every command runs with: settings, the stores, and where its output goes."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.exceptions import ResponseError

from payctl.errors import NotFound, PayctlError
from payctl.render import Output
from payctl.settings import PayctlSettings
from payctl.stores import Stores
from paystream.events import DEAD_LETTER_SUFFIX, Stream, dead_letter_stream


@dataclass
class Context:
    settings: PayctlSettings
    stores: Stores
    out: Output

    def stream_keys(self, stream: str) -> list[str]:
        """The Redis keys an operator's stream name stands for: a sharded stream's logical name
        (`payment:events`, or its `payment:events:dlq`) is every shard's; any other name itself."""
        layout = self.settings.layout
        dlq = stream.endswith(DEAD_LETTER_SUFFIX)
        logical = stream.removesuffix(DEAD_LETTER_SUFFIX) if dlq else stream
        if layout.shards == 1 or logical not in set(Stream):
            return [stream]
        keys = layout.keys(logical)
        return [dead_letter_stream(key) for key in keys] if dlq else list(keys)

    @property
    def bus_streams(self) -> list[str]:
        """Every shard stream of the bus."""
        return list(self.settings.layout.bus_keys())


Command = Callable[[argparse.Namespace, Context], Awaitable[int]]


def seconds(milliseconds: float | None) -> float | None:
    """Milliseconds as seconds, rounded for JSON."""
    return None if milliseconds is None else round(milliseconds / 1000, 3)


def redis_refusal(exc: ResponseError, *, stream: str, group: str | None = None) -> PayctlError:
    """A ResponseError as the one line an operator needs (NOGROUP names the group and stream)."""
    message = str(exc)
    if "NOGROUP" in message:
        return NotFound(f"no consumer group {group!r} on stream {stream!r}")
    if "WRONGTYPE" in message:
        return PayctlError(f"{stream!r} is not a stream")
    return PayctlError(f"Redis refused the command: {message}")
