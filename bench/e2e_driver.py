"""The end-to-end driver: provider webhooks in, `payment:completed` out, timed in one process.

    python -m bench.e2e_driver SPEC.json RESULT.json

Connects `sockets` python-socketio clients to the notifier (each with a salon-scoped JWT, as a
salon's front desk or a payment page would have) and subscribes each invoice of the run to one of
them. Then, open-loop at `rate` per second for `warmup_s` (checked, not timed) + `duration_s`, POSTs
a signed Razorpay `payment.captured` for invoice i at its scheduled time, whether or not earlier ones
were answered.
Latency of invoice i = when its `payment:completed` arrived - when its webhook POST started; both
clocks are this process's CLOCK_MONOTONIC. The harness has recorded each invoice's owner (merchant
and salon) beforehand: that is what lets a socket subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import socketio  # type: ignore[import-untyped]
import uvloop

from bench.loadgen import unpin
from bench.payloads import MERCHANT_ID, razorpay_captured, razorpay_order_id, signed_razorpay_headers
from bench.stats import percentile
from bench.usage import CpuMeter
from paystream.notifier_tokens import mint_notifier_token

SUBSCRIBE = "subscribe:payment-events"
COMPLETED = "payment:completed"
SUBSCRIBE_CONCURRENCY = 64
HTTP_CONNECTIONS = 256


def salon_of(index: int, sockets: int) -> str:
    """The salon invoice `index` belongs to; socket k holds a token for `bench-salon-k`."""
    return f"bench-salon-{index % sockets}"


def invoice_count(rate: float, duration_s: float) -> int:
    return max(1, round(rate * duration_s))


@dataclass(frozen=True, slots=True)
class E2eSpec:
    api_url: str
    notifier_url: str
    razorpay_secret: str
    jwt_secret: str
    namespace: str
    rate: float
    warmup_s: float
    duration_s: float
    sockets: int
    # After the last POST: give up once no completion has arrived for `idle_s`, or after `max_wait_s`.
    idle_s: float
    max_wait_s: float
    # The platform's processes (name -> pid): their CPU time is sampled over the send window only.
    cpu_pids: dict[str, int]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> E2eSpec:
        return cls(**raw)


class Arrivals:
    """When each invoice's first `payment:completed` arrived, and how many arrived in all."""

    def __init__(self, spec: E2eSpec, count: int) -> None:
        self.index = {razorpay_order_id(spec.namespace, i): i for i in range(count)}
        self.first_at: list[float | None] = [None] * count
        self.first_wall: list[float | None] = [None] * count
        self.count = [0] * count
        self.event_ids: list[set[str]] = [set() for _ in range(count)]
        self.unknown = 0
        self.complete = asyncio.Event()
        self.expected: set[int] = set()
        self.last_arrival = time.monotonic()

    async def on_completed(self, data: Any) -> None:
        now = time.monotonic()
        invoice_id = data.get("invoiceId") if isinstance(data, dict) else None
        index = self.index.get(invoice_id) if isinstance(invoice_id, str) else None
        if index is None:
            self.unknown += 1
            return
        self.count[index] += 1
        self.event_ids[index].add(str(data.get("eventId")))
        if self.first_at[index] is None:
            self.first_at[index] = now
            self.first_wall[index] = time.time()
            self.last_arrival = now
            self.expected.discard(index)
            if not self.expected:
                self.complete.set()


def token(spec: E2eSpec, socket_index: int) -> str:
    return mint_notifier_token(
        spec.jwt_secret,
        merchant_id=MERCHANT_ID,
        subject=f"bench-user-{socket_index}",
        salon_id=salon_of(socket_index, spec.sockets),
        ttl_s=3600,
    )


async def connect_sockets(spec: E2eSpec, arrivals: Arrivals) -> list[socketio.AsyncClient]:
    clients = []
    for k in range(spec.sockets):
        client = socketio.AsyncClient(reconnection=False)
        client.on(COMPLETED, arrivals.on_completed)
        await client.connect(
            spec.notifier_url,
            auth={"token": token(spec, k)},
            transports=["websocket"],
            socketio_path="socket.io",
            wait_timeout=15,
        )
        clients.append(client)
    return clients


async def subscribe_all(spec: E2eSpec, clients: list[socketio.AsyncClient], count: int) -> list[int]:
    """Subscribe invoice i on socket i % sockets; returns the invoices that could not be subscribed."""
    slots = asyncio.Semaphore(SUBSCRIBE_CONCURRENCY)
    refused: list[int] = []

    async def subscribe(i: int) -> None:
        async with slots:
            try:
                ack = await clients[i % spec.sockets].call(
                    SUBSCRIBE, {"invoiceId": razorpay_order_id(spec.namespace, i)}, timeout=30
                )
            except socketio.exceptions.TimeoutError:
                ack = None
        if not (isinstance(ack, dict) and ack.get("ok")):
            refused.append(i)

    await asyncio.gather(*(subscribe(i) for i in range(count)))
    return sorted(refused)


async def send_open_loop(
    spec: E2eSpec, count: int, skip: set[int]
) -> tuple[list[float | None], list[float], Counter[str], list[float], list[float | None]]:
    """POST invoice i's webhook at start + i / rate. Returns each POST's start time (None if not sent
    or not answered 200), the lag of each start behind its schedule, the failures, and POST latencies."""
    sent_at: list[float | None] = [None] * count
    sent_wall: list[float | None] = [None] * count
    lag_ms: list[float] = []
    post_ms: list[float] = []
    failures: Counter[str] = Counter()
    url = f"{spec.api_url}/api/v1/providers/razorpay/webhook"
    connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def post(i: int) -> None:
            body = razorpay_captured(spec.namespace, i, salon_id=salon_of(i, spec.sockets))
            headers = signed_razorpay_headers(spec.namespace, i, body, spec.razorpay_secret)
            started, started_wall = time.monotonic(), time.time()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failures[f"error:{type(exc).__name__}"] += 1
                return
            if status != 200:
                failures[f"http:{status}"] += 1
                return
            sent_at[i] = started
            sent_wall[i] = started_wall
            post_ms.append((time.monotonic() - started) * 1000)

        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic() + 0.05
        for i in range(count):
            if i in skip:
                continue
            due = start + i / spec.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lag_ms.append(max(0.0, time.monotonic() - due) * 1000)
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
    return sent_at, lag_ms, failures, post_ms, sent_wall


async def wait_for_completions(spec: E2eSpec, arrivals: Arrivals) -> None:
    """Until every expected invoice completed, or the pipeline went quiet: a late completion is
    latency, only one that never comes is lost."""
    if not arrivals.expected:
        return
    arrivals.complete.clear()
    deadline = time.monotonic() + spec.max_wait_s
    arrivals.last_arrival = max(arrivals.last_arrival, time.monotonic())
    while arrivals.expected and time.monotonic() < deadline:
        if time.monotonic() - arrivals.last_arrival > spec.idle_s:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.complete.wait(), timeout=1.0)


async def run(spec: E2eSpec) -> dict[str, Any]:
    count = invoice_count(spec.rate, spec.warmup_s + spec.duration_s)
    # The first second or so warms connections and prepared statements: checked, not timed.
    measured_from = round(spec.rate * spec.warmup_s)
    arrivals = Arrivals(spec, count)
    clients = await connect_sockets(spec, arrivals)
    try:
        refused = await subscribe_all(spec, clients, count)
        arrivals.expected = set(range(count)) - set(refused)
        meter = CpuMeter(spec.cpu_pids)
        meter.start()
        send_started = time.monotonic()
        sent_at, lag_ms, failures, post_ms, sent_wall = await send_open_loop(spec, count, set(refused))
        send_s = time.monotonic() - send_started
        accepted = [i for i in range(count) if sent_at[i] is not None]
        # Invoices whose webhook was refused will never complete: stop waiting for them.
        arrivals.expected &= set(accepted)
        await wait_for_completions(spec, arrivals)
        cpu_s = meter.seconds()
        # A little longer, so that a duplicate right behind the last first copy is seen too.
        await asyncio.sleep(0.2)
    finally:
        for client in clients:
            await client.disconnect()
    started_at: list[float] = []
    latency_ms: list[float] = []
    # Wall-clock times of the timed invoices, to join with the stores' timestamps (bench.trace).
    timed: list[tuple[int, float, float]] = []
    lost: list[int] = []
    for i in accepted:
        first, sent = arrivals.first_at[i], sent_at[i]
        if first is None or sent is None:
            lost.append(i)
        elif i >= measured_from:
            started_at.append(sent)
            latency_ms.append((first - sent) * 1000)
            sent_w, first_w = sent_wall[i], arrivals.first_wall[i]
            if sent_w is not None and first_w is not None:
                timed.append((i, sent_w, first_w))
    arrived = [at for at in arrivals.first_at if at is not None]
    first_sent = min((at for at in sent_at if at is not None), default=None)
    drain_s = max(arrived) - first_sent if arrived and first_sent is not None else 0.0
    ordered_lag = sorted(lag_ms)
    ordered_post = sorted(post_ms)
    return {
        "invoices": count,
        "subscribe_refused": len(refused),
        "sent": len(lag_ms),
        "accepted": len(accepted),
        "accepted_keys": accepted,
        "send_s": send_s,
        "achieved_rate": len(lag_ms) / send_s if send_s > 0 else 0.0,
        "post_failures": dict(failures),
        "post_p50_ms": percentile(ordered_post, 0.5),
        "post_p99_ms": percentile(ordered_post, 0.99),
        "send_lag_p99_ms": percentile(ordered_lag, 0.99),
        "send_lag_max_ms": ordered_lag[-1] if ordered_lag else None,
        "measured_from": measured_from,
        "received": len(accepted) - len(lost),
        # What the pipeline kept up with: completions per second, first POST to last completion.
        "completion_rate": len(arrived) / drain_s if drain_s > 0 else 0.0,
        "lost": lost,
        "duplicated": sum(1 for i in accepted if arrivals.count[i] > 1),
        "duplicated_event_ids": sum(1 for i in accepted if len(arrivals.event_ids[i]) > 1),
        "unknown_invoices": arrivals.unknown,
        "started_at": started_at,
        "latency_ms": latency_ms,
        "timed_wall": timed,
        "cpu_s": cpu_s,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.e2e_driver SPEC.json RESULT.json", file=sys.stderr)
        return 2
    unpin()
    spec = E2eSpec.from_dict(orjson.loads(Path(argv[0]).read_bytes()))
    result = uvloop.run(run(spec))
    Path(argv[1]).write_bytes(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
