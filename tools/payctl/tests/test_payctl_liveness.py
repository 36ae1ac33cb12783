"""Who is alive on the bus: consumers judged by their heartbeats (not by what Redis 6.2's XINFO says
of an idle consumer), and the notifier's readers with their position, lag and last heartbeat."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from payctl_testkit import PAYMENTS, Payctl, payment_event
from prometheus_client.parser import text_string_to_metric_families

from notifier.app import create_app as create_notifier_app
from notifier.keys import HUB
from notifier.reader import StreamTail
from paystream.events import STREAM_FIELD, ConsumerGroup, EventType, Stream
from paystream.heartbeat import HEARTBEAT_PREFIX
from paystream_devstack.testing import eventually
from paystream_devstack.testing.notifier_client import notifier_settings
from paystream_devstack.testing.processes import ServiceProcess

PROCESSOR = ConsumerGroup.PAYMENT_PROCESSOR
PROCESSOR_STREAMS = (Stream.PAYMENT_EVENTS,)
SAMPLE_GROUP = "sample-group"


async def groups_json(payctl: Payctl, *args: str) -> dict[str, Any]:
    result = await payctl("groups", *args, "--json")
    assert result.returncode == 0, result.stderr
    body: dict[str, Any] = result.json()
    return body


def by_group(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(item["stream"], item["group"]): item for item in body["groups"]}


@pytest.mark.slow
async def test_an_idle_platform_with_a_live_processor_is_healthy(
    payctl: Payctl,
    redis: aioredis.Redis,
    service_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
) -> None:
    processor = spawn_service("payment_processor", service_env)
    env = {"PAYCTL_PROCESSOR_URL": f"http://127.0.0.1:{service_env['PROCESSOR_PORT']}"}
    wanted = {(str(stream), PROCESSOR) for stream in PROCESSOR_STREAMS}

    async def healthy_with_every_group() -> dict[str, Any] | None:
        result = await payctl("health", "--services", "processor", "--json", env=env)
        body: dict[str, Any] = result.json()
        return body if result.returncode == 0 and wanted <= set(by_group(body)) else None

    health = await eventually(healthy_with_every_group, timeout=30, interval=0.2, message="health OK")

    assert health["problems"] == []
    assert {item["live_consumers"] for item in health["groups"]} == {1}
    # Nothing was ever published: Redis has served the processor nothing, so XINFO does not list it.
    for stream in PROCESSOR_STREAMS:
        assert await redis.xinfo_consumers(stream, PROCESSOR) == []
    for item in by_group(await groups_json(payctl)).values():
        [consumer] = item["consumers"]
        assert (consumer["live"], consumer["idle_s"]) == (True, None)  # live, never served an entry
        assert consumer["heartbeat"]["pid"] == processor.pid
        assert consumer["heartbeat"]["last_beat_s"] < 15


@pytest.fixture
def sample_worker(
    redis_url: str, clean_db: str, spawn_service: Callable[..., ServiceProcess]
) -> Callable[[str], ServiceProcess]:
    """Factory: a consumer process of the real runtime on `payment:events`, beating every 200 ms."""

    def start(name: str) -> ServiceProcess:
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": clean_db,
            "SAMPLE_STREAM": PAYMENTS,
            "SAMPLE_GROUP": SAMPLE_GROUP,
            "SAMPLE_CONSUMER": name,
            "SAMPLE_HEARTBEAT_INTERVAL_MS": "200",
            "LOG_FORMAT": "json",
        }
        return spawn_service("paystream_devstack.testing.sample_worker", env)

    return start


@pytest.mark.slow
async def test_a_stopped_consumer_leaves_and_a_killed_one_is_flagged_once_its_heartbeat_lapses(
    payctl: Payctl, redis: aioredis.Redis, sample_worker: Callable[[str], ServiceProcess]
) -> None:
    stopping, dying = sample_worker("worker-stopping"), sample_worker("worker-dying")

    async def live_members() -> list[str] | None:
        body = await groups_json(payctl)  # not `groups STREAM`: the stream may not exist yet
        group = by_group(body).get((PAYMENTS, SAMPLE_GROUP))
        members = [item["name"] for item in group["consumers"] if item["live"]] if group else []
        return members if len(members) == 2 else None

    assert await eventually(live_members, timeout=30, interval=0.1) == ["worker-dying", "worker-stopping"]
    healthy = await payctl("health", "--services", "", "--json")
    assert healthy.returncode == 0, healthy.stdout

    # A clean stop removes the consumer's record before the process exits.
    assert await asyncio.to_thread(stopping.terminate) == 0
    group = by_group(await groups_json(payctl, PAYMENTS))[(PAYMENTS, SAMPLE_GROUP)]
    assert [item["name"] for item in group["consumers"]] == ["worker-dying"]

    # A SIGKILLed one leaves its record behind; once it stops beating, the group has no live consumer.
    assert dying.process is not None
    dying.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(dying.process.wait, 10)

    async def flagged() -> dict[str, Any] | None:
        result = await payctl("health", "--services", "", "--json")
        return result.json() if result.returncode == 1 else None

    body = await eventually(flagged, timeout=20, interval=0.1, message="the dead consumer flagged")
    assert body["problems"] == [f"{SAMPLE_GROUP} on {PAYMENTS}: no consumer seen within 2m"]
    [group] = [item for item in body["groups"] if item["group"] == SAMPLE_GROUP]
    [member] = group["consumers"]
    assert (member["name"], member["live"], group["live_consumers"]) == ("worker-dying", False, 0)
    assert member["heartbeat"]["last_beat_s"] > member["heartbeat"]["silent_after_s"]
    human = await payctl("groups", PAYMENTS)
    assert "worker-dying" in human.stdout and "0/1" in human.stdout


@pytest.fixture
async def blocked_tail(
    redis: aioredis.Redis,
) -> AsyncIterator[tuple[StreamTail, asyncio.Event, asyncio.Event]]:
    """A notifier reader (the real one) whose hand-over of the first entry waits for `release`;
    it beats every 100 ms. Yields (tail, entered, release)."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def on_entry(_entry_id: str, _raw: bytes) -> None:
        entered.set()
        await release.wait()

    tail = StreamTail(redis, PAYMENTS, on_entry, heartbeat_interval_s=0.1)
    stop = asyncio.Event()
    await tail.start(stop)
    tasks = [asyncio.create_task(tail.run(stop)), asyncio.create_task(tail.heartbeat.run(stop))]
    yield tail, entered, release
    release.set()
    stop.set()
    await asyncio.wait(tasks, timeout=5)


async def test_a_reader_behind_shows_its_lag_and_is_flagged_past_max_lag_or_when_silent(
    payctl: Payctl,
    redis: aioredis.Redis,
    blocked_tail: tuple[StreamTail, asyncio.Event, asyncio.Event],
) -> None:
    tail, entered, release = blocked_tail
    # One transaction: the reader is served all five at once, and holds on to the first.
    async with redis.pipeline(transaction=True) as pipe:
        for index in range(5):
            event = payment_event(EventType.PAYMENT_SUCCESS, "mer_a", f"pay_{index}", "success")
            pipe.xadd(PAYMENTS, {STREAM_FIELD: event.encode()})
        entry_ids = [item.decode() for item in await pipe.execute()]
    await asyncio.wait_for(entered.wait(), 10)

    async def reader_at(position: str) -> dict[str, Any] | None:
        readers = (await groups_json(payctl))["readers"]
        return readers[0] if readers and readers[0]["position"] == position else None

    reader = await eventually(lambda: reader_at(entry_ids[0]), timeout=10, interval=0.05)
    assert (reader["name"], reader["stream"], reader["live"]) == (tail.name, PAYMENTS, True)
    assert (reader["lag"], reader["lag_capped"]) == (4, False)

    behind = await payctl("health", "--services", "", "--max-lag", "3", "--json")
    assert behind.returncode == 1
    assert behind.json()["problems"] == [f"reader {tail.name} on {PAYMENTS}: lag 4 > 3"]
    within = await payctl("health", "--services", "", "--max-lag", "4")
    assert within.returncode == 0, within.stdout
    assert tail.name in within.stdout

    release.set()
    caught_up = await eventually(lambda: reader_at(entry_ids[-1]), timeout=10, interval=0.05)
    assert caught_up["lag"] == 0

    # A reader that stops beating without removing its record (a crash) goes silent, and is flagged.
    tail.heartbeat.interval_ms = 600_000  # one more beat, then none for the rest of the test

    async def silent() -> dict[str, Any] | None:
        result = await payctl("health", "--services", "", "--json")
        return result.json() if result.returncode == 1 else None

    body = await eventually(silent, timeout=10, interval=0.1, message="the silent reader flagged")
    [problem] = body["problems"]
    assert problem.startswith(f"reader {tail.name} on {PAYMENTS}: silent, last heartbeat ")
    assert body["readers"][0]["live"] is False


async def test_a_notifier_publishes_its_reader_and_exports_its_own_lag(
    payctl: Payctl, redis: aioredis.Redis, redis_url: str, clean_db: str
) -> None:
    app = create_notifier_app(notifier_settings(redis_url, clean_db))
    async with TestClient(TestServer(app)) as client:
        name = app[HUB].tail.name
        event = payment_event(EventType.PAYMENT_SUCCESS, "mer_a", "pay_1", "success")
        entry_id = (await redis.xadd(PAYMENTS, {STREAM_FIELD: event.encode()})).decode()

        async def scraped() -> dict[str, float] | None:
            response = await client.get("/metrics")
            assert response.status == 200
            families = text_string_to_metric_families(await response.text())
            samples = {
                item.name: item.value
                for family in families
                for item in family.samples
                if item.labels in ({"stream": PAYMENTS}, {"stream": PAYMENTS, "reader": name})
            }
            return samples if samples.get("paystream_notifier_stream_lag") == 0 else None

        samples = await eventually(scraped, timeout=10, interval=0.2, message="the notifier's own lag")
        assert samples["paystream_stream_reader_live"] == 1

        async def published() -> dict[str, Any] | None:
            readers = (await groups_json(payctl))["readers"]
            return next((item for item in readers if item["position"] == entry_id), None)

        # Its position is published with each heartbeat (every 5 s).
        reader = await eventually(published, timeout=15, interval=0.5, message="the reader's position")
        assert (reader["name"], reader["live"], reader["lag"]) == (name, True, 0)

    # A clean stop removes the reader's record.
    assert await redis.keys(f"{HEARTBEAT_PREFIX}:*") == []
    assert (await groups_json(payctl))["readers"] == []
