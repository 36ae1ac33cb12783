"""The names that cross a process boundary, pinned to their wire values: a change here breaks
merchants' receivers, stored rows or running replicas of another version, so it must be deliberate."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson

from paystream.events import (
    MERCHANT_EVENT_TYPES,
    PROVIDER_EVENTS_CHANNEL,
    ConsumerGroup,
    EventType,
    Stream,
)
from paystream.ordering import UNORDERED_EVENT_TYPES
from paystream.webhooks import (
    DUE_CHANNEL,
    is_delivery_id,
    new_delivery_id,
    new_webhook_secret,
    standard_key,
    webhook_body,
)


def test_streams_and_groups_keep_their_names() -> None:
    assert [stream.value for stream in Stream] == ["payment:events"]
    assert PROVIDER_EVENTS_CHANNEL == "provider_events"
    assert {group.value for group in ConsumerGroup} == {"payment-processor", "webhook-dispatcher"}


def test_merchants_receive_every_event_type_and_only_the_test_send_is_unordered() -> None:
    assert set(MERCHANT_EVENT_TYPES) == set(EventType)
    assert EventType.WEBHOOK_TEST in MERCHANT_EVENT_TYPES
    assert {EventType.WEBHOOK_TEST} == UNORDERED_EVENT_TYPES


def test_a_secret_is_whsec_and_32_random_bytes_in_base64() -> None:
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert standard_key(first) == base64.b64decode(first.removeprefix("whsec_"), validate=True)
    assert len(standard_key(first)) == 32
    # Not base64 after the prefix (the seeded test merchant's secret): its bytes are the key.
    assert standard_key("whsec_test_abc123") == b"test_abc123"


def test_a_delivery_id_is_msg_and_a_uuid7_in_hex() -> None:
    ids = [new_delivery_id() for _ in range(3)]
    assert all(is_delivery_id(delivery_id) for delivery_id in ids)
    assert [delivery_id[:4] for delivery_id in ids] == ["msg_"] * 3
    for not_an_id in ("", "msg_", "msg_" + "0" * 31, "msg_" + "A" * 32, "msg_" + "0" * 32 + "\n", "whsec_x"):
        assert not is_delivery_id(not_an_id), not_an_id


def test_the_due_channel_and_the_body_shape() -> None:
    assert DUE_CHANNEL == "webhook_due"
    occurred_at = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    body = webhook_body("payment.success", occurred_at, {"payment": {"id": "pay_1"}})
    assert orjson.loads(body) == {
        "event": "payment.success",
        "timestamp": int(occurred_at.timestamp()),
        "data": {"payment": {"id": "pay_1"}},
    }
    assert list(orjson.loads(body)) == ["event", "timestamp", "data"]
