"""payctl on sharded streams (STREAM_SHARDS=3 on a plain Redis): each shard listed and summed, the
logical name standing for every shard, a dead letter replayed onto its own shard."""

from __future__ import annotations

import redis.asyncio as aioredis
from payctl_testkit import DISPATCHER, PAYMENTS, Payctl, payment_event

from paystream.consumer import ConsumerConfig, StreamConsumer
from paystream.errors import PermanentError
from paystream.events import STREAM_FIELD, Event, EventType, entry_fields
from paystream.ordering import ordering_key
from paystream.shards import StreamLayout

SHARDS = StreamLayout(shards=3)
ENV = {"STREAM_SHARDS": "3"}


async def test_streams_groups_and_dead_letters_are_shown_per_shard_and_summed(
    payctl: Payctl, redis: aioredis.Redis
) -> None:
    events = [payment_event(EventType.PAYMENT_PENDING, "mer_a", f"pay_{n}", "pending") for n in range(12)]
    for event in events:
        key = SHARDS.key_for(PAYMENTS, event.merchant_id, ordering_key(event), event.id)
        await redis.xadd(key, entry_fields(event.encode(), 1))  # type: ignore[arg-type]
    refused = events[5]
    refused_key = SHARDS.key_for(PAYMENTS, refused.merchant_id, ordering_key(refused), refused.id)

    async def dispatch(event: Event, _ctx: object) -> None:
        if event.id == refused.id:
            raise PermanentError("refused on purpose")

    consumer = StreamConsumer(
        redis, ConsumerConfig(group=DISPATCHER, streams=SHARDS.keys(PAYMENTS)), dispatch
    )
    assert await consumer.run_once() == len(events) - 1  # one dead-lettered

    streams = (await payctl("streams", "--json", env=ENV)).json()
    lengths = {item["stream"]: item["length"] for item in streams["streams"]}
    assert list(lengths) == list(SHARDS.keys(PAYMENTS)) and all(lengths.values())
    assert streams["totals"] == [{"stream": PAYMENTS, "shards": 3, "length": 12, "dead_letters": 1}]
    groups = (await payctl("groups", "--json", env=ENV)).json()
    assert [(item["stream"], item["group"]) for item in groups["groups"]] == [
        (key, DISPATCHER) for key in SHARDS.keys(PAYMENTS)
    ]
    assert [(t["group"], t["shards"], t["pending"], t["lag"]) for t in groups["totals"]] == [
        (DISPATCHER, 3, 0, 0)
    ]

    listed = (await payctl("dlq", "list", PAYMENTS, "--json", env=ENV)).json()
    [letter] = listed["dead_letters"]
    assert (letter["dlq"], letter["source_stream"]) == (f"{refused_key}:dlq", refused_key)
    shown = (await payctl("dlq", "show", PAYMENTS, letter["id"], "--json", env=ENV)).json()
    assert shown["event"]["id"] == refused.id

    replay = await payctl("dlq", "replay", PAYMENTS, letter["id"], "--json", env=ENV)
    assert replay.returncode == 0, replay.stderr
    [replayed] = replay.json()["replayed"]
    assert replayed["source_stream"] == refused_key  # back on the payment's own shard
    [(_, fields)] = await redis.xrange(refused_key, min=replayed["new_id"], max=replayed["new_id"])
    assert fields[STREAM_FIELD] == refused.encode()
    assert await redis.xlen(f"{refused_key}:dlq") == 0
