"""The outbound policy at delivery time, in dev mode (loopback listed, as `make run` and the test
fixtures run): the dispatcher reads and judges every URL as the API does when it is configured, and
never connects to a metadata endpoint or a private network."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from dispatcher_testkit import (
    MakeMerchant,
    MakeReceiver,
    StartDispatcher,
    attempted,
    payment_created,
    publish,
)

from paystream.webhooks import new_delivery_id
from paystream_devstack.testing import ServiceProcess, eventually
from paystream_devstack.testing.outbound_urls import DEV_MODE_URL_CASES, UrlCase
from webhook_dispatcher.delivery import DeliverySender
from webhook_dispatcher.keys import HTTP_SESSION, SETTINGS
from webhook_dispatcher.models import DeliveryStatus, DueDelivery
from webhook_dispatcher.settings import DispatcherSettings
from webhook_dispatcher.worker import http_client

SECRET = "whsec_test_abc123"


@pytest.fixture
async def sender(dispatcher_env: dict[str, str]) -> AsyncIterator[DeliverySender]:
    """The dispatcher's own sender over its own HTTP client (guarded resolver included)."""
    app = web.Application()
    # A short timeout, so that a URL wrongly let through fails the test quickly rather than hangs.
    app[SETTINGS] = DispatcherSettings.from_env({**dispatcher_env, "WEBHOOK_HTTP_TIMEOUT_S": "2"})
    client = http_client(app)
    await anext(client)
    try:
        yield DeliverySender(app[HTTP_SESSION], app[SETTINGS].delivery)
    finally:
        await anext(client, None)


def due_delivery(url: str) -> DueDelivery:
    return DueDelivery(
        id=new_delivery_id(),
        merchant_id="mer_outbound",
        endpoint_id="we_outbound",
        event_type="payment.created",
        payload=b'{"event":"payment.created"}',
        attempts=0,
        order_key=None,
        ordering_seq=None,
        url=url,
        endpoint_enabled=True,
        secrets=(SECRET,),
        lease_token=uuid.uuid4(),
    )


@pytest.mark.parametrize("case", DEV_MODE_URL_CASES, ids=lambda case: case.why)
async def test_each_url_is_sent_or_refused_as_the_api_judges_it(
    make_receiver: MakeReceiver, sender: DeliverySender, case: UrlCase
) -> None:
    receiver = await make_receiver([SECRET])
    port = int(receiver.url.rsplit(":", 1)[1].split("/", 1)[0])

    outcome = await sender.attempt(due_delivery(case.url(port)))

    if case.permitted:
        assert outcome.status == DeliveryStatus.SUCCESS, outcome.error
        assert len(receiver.requests) == 1 and receiver.requests[0].legacy_valid_for == [SECRET]
    else:
        assert outcome.status == DeliveryStatus.PENDING  # a failed attempt, retried on the schedule
        assert outcome.error is not None and outcome.error.startswith("refused: "), outcome.error
        assert receiver.requests == []


async def test_metadata_and_private_networks_are_refused_in_dev_mode(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    """Rows written straight to the database (as if stored before the policy existed) are refused at
    connect time; a loopback merchant's delivery, published last, is the sentinel."""
    receiver = await make_receiver([SECRET])
    port = receiver.url.rsplit(":", 1)[1].split("/", 1)[0]
    refused = {
        "metadata": await make_merchant(f"http://169.254.169.254:{port}/latest/meta-data/"),
        "rfc1918": await make_merchant(f"http://10.0.0.1:{port}/hooks"),
        "mapped metadata": await make_merchant(f"http://[::ffff:169.254.169.254]:{port}/hooks"),
    }
    sentinel = await make_merchant(receiver.url)
    await start_dispatcher()

    for n, merchant in enumerate(refused.values()):
        payment_id = f"pay_OUTBOUND{n:08d}"
        await publish(redis, payment_created(merchant.id, payment_id))
    await publish(redis, payment_created(sentinel.id, "pay_OUTBOUNDSENTINEL"))

    done = await eventually(lambda: attempted(db_pool, sentinel.id), timeout=15)
    assert done["status"] == "success"
    for name, merchant in refused.items():
        row = await eventually(lambda m=merchant: attempted(db_pool, m.id), timeout=15)
        assert row["response_code"] is None, name
        assert row["error"].startswith("refused: "), (name, row["error"])
        assert "link-local or cloud metadata" in row["error"] or "not a public address" in row["error"]
    assert [request.json()["data"]["payment"]["id"] for request in receiver.requests] == [
        "pay_OUTBOUNDSENTINEL"
    ]


def test_a_dispatcher_process_listens_on_loopback_and_warns_of_the_deprecated_switch(
    dispatcher_env: dict[str, str], spawn_service: Callable[..., ServiceProcess]
) -> None:
    env = {name: value for name, value in dispatcher_env.items() if name != "WEBHOOK_ALLOWED_PRIVATE_NETS"}
    assert not any(name.endswith("_HOST") for name in env)
    dispatcher = spawn_service("webhook_dispatcher", {**env, "WEBHOOK_ALLOW_PRIVATE_URLS": "true"})

    port = int(env["DISPATCHER_PORT"])
    listening = {
        conn.laddr.ip
        for conn in psutil.Process(dispatcher.pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
    }
    assert listening == {"127.0.0.1"}
    log = dispatcher.log_text()
    assert "settings.notice" in log and "WEBHOOK_ALLOW_PRIVATE_URLS=true is deprecated" in log
