"""Pure parts of the dispatcher: signatures, the retry schedule, the address policy, ordering plans."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from dispatcher_testkit import payment_event, payment_lifecycle

from paystream.errors import SettingsError
from paystream.events import EventType
from paystream.netguard import UnsafeUrlError, is_public_address, parse_outbound_url
from webhook_dispatcher.models import Endpoint, UnattemptedDelivery
from webhook_dispatcher.ordering import ordering_key
from webhook_dispatcher.planning import KeyState, apply_ordering, plan_deliveries
from webhook_dispatcher.schedule import RetrySchedule, parse_retry_after
from webhook_dispatcher.settings import DispatcherSettings
from webhook_dispatcher.signing import legacy_signature, signed_headers, standard_key, standard_signature

# --- signatures ---------------------------------------------------------------------------------


def test_standard_signature_matches_the_specification_example() -> None:
    # The example of the Standard Webhooks specification (and its reference libraries' tests).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_test_merchant_secret_is_not_base64_so_its_bytes_are_the_key() -> None:
    assert standard_key("whsec_test_abc123") == b"test_abc123"
    assert standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == base64.b64decode(
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )
    body = b'{"event":"payment.success"}'
    expected = hmac.new(b"test_abc123", b"msg_1.100." + body, hashlib.sha256).digest()
    assert (
        standard_signature("whsec_test_abc123", "msg_1", 100, body)
        == "v1," + base64.b64encode(expected).decode()
    )


def test_legacy_signature_is_keyed_with_the_whole_secret() -> None:
    body = b'{"a":1}'
    assert (
        legacy_signature("whsec_test_abc123", body)
        == hmac.new(b"whsec_test_abc123", body, hashlib.sha256).hexdigest()
    )


def test_two_live_secrets_give_two_standard_signatures_current_first() -> None:
    body = b"{}"
    headers = signed_headers("msg_x", 1700000000, body, ["whsec_new", "whsec_old"])
    assert headers["webhook-signature"] == " ".join(
        [
            standard_signature("whsec_new", "msg_x", 1700000000, body),
            standard_signature("whsec_old", "msg_x", 1700000000, body),
        ]
    )
    assert headers["X-Webhook-Signature"] == legacy_signature("whsec_new", body)
    assert headers["X-Webhook-Signature-Previous"] == legacy_signature("whsec_old", body)
    assert headers["webhook-id"] == "msg_x"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["Content-Type"] == "application/json"
    single = signed_headers("msg_x", 1700000000, body, ["whsec_new"])
    assert " " not in single["webhook-signature"]
    assert "X-Webhook-Signature-Previous" not in single


# --- retry schedule -------------------------------------------------------------------------------

TEST_SCHEDULE = RetrySchedule((0, 5, 10, 15, 20))


def test_test_schedule_waits_5_10_15_20_then_gives_up() -> None:
    assert [TEST_SCHEDULE.next_delay(n) for n in range(1, 6)] == [5, 10, 15, 20, None]


def test_production_schedule_has_ten_percent_jitter() -> None:
    schedule = RetrySchedule((0, 60, 300, 1800, 7200), jitter=0.1)
    delays = [schedule.next_delay(1) for _ in range(200)]
    assert all(54 <= d <= 66 for d in delays if d is not None)
    assert len({round(d or 0, 3) for d in delays}) > 50
    last = [schedule.next_delay(4) for _ in range(50)]
    assert all(6480 <= d <= 7920 for d in last if d is not None)
    assert schedule.next_delay(5) is None


def test_retry_after_is_clamped_to_the_schedule_range() -> None:
    assert TEST_SCHEDULE.next_delay(1, retry_after_s=12) == 12
    assert TEST_SCHEDULE.next_delay(1, retry_after_s=1) == 5
    assert TEST_SCHEDULE.next_delay(1, retry_after_s=3600) == 20
    assert TEST_SCHEDULE.next_delay(5, retry_after_s=10) is None


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None


# --- settings ----------------------------------------------------------------------------------------


def test_settings_refuse_a_lease_or_stream_deadline_shorter_than_an_attempt(
    service_env: dict[str, str],
) -> None:
    settings = DispatcherSettings.from_env(service_env)
    assert settings.delivery.retry_intervals == (0, 5, 10, 15, 20)
    assert settings.delivery.jitter == 0
    assert settings.reclaim_idle_ms > settings.delivery.http_timeout_s * 1000
    production = DispatcherSettings.from_env({**service_env, "WEBHOOK_RETRY_INTERVALS_TEST": "false"})
    assert production.delivery.retry_intervals == (0, 60, 300, 1800, 7200)
    assert production.delivery.jitter == 0.1
    with pytest.raises(SettingsError, match="WEBHOOK_LEASE_S"):
        DispatcherSettings.from_env({**service_env, "WEBHOOK_LEASE_S": "12"})
    with pytest.raises(SettingsError, match="DISPATCHER_RECLAIM_IDLE_MS"):
        DispatcherSettings.from_env({**service_env, "DISPATCHER_RECLAIM_IDLE_MS": "9000"})


# --- outbound address policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.100.100.200",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://x",
        "http://",
        "https://exa mple.com",
        "//x.com/a",
    ],
)
def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        parse_outbound_url(url)


def test_url_defaults_its_port() -> None:
    assert parse_outbound_url("https://Example.com/hooks").port == 443
    assert parse_outbound_url("http://example.com:8080/hooks").port == 8080


# --- ordering ----------------------------------------------------------------------------------------

ALL = Endpoint("we_1", "mer_1", None)


def test_payment_refund_and_dispute_events_share_the_payment_key() -> None:
    created = payment_event(EventType.PAYMENT_CREATED, "mer_1", "pay_1", "created")
    assert ordering_key(created) == "pay_1"
    refund = created.__class__(
        type=EventType.REFUND_CREATED,
        merchant_id="mer_1",
        data={"refund": {"id": "rfnd_1", "payment_id": "pay_1"}},
    )
    assert ordering_key(refund) == "pay_1"
    token = created.__class__(
        type=EventType.TOKEN_SAVED, merchant_id="mer_1", data={"token": {"last4": "1111"}}
    )
    assert ordering_key(token) is None


def test_a_payments_later_events_are_held_behind_its_first() -> None:
    events = payment_lifecycle("mer_1", "pay_1")
    planned = plan_deliveries(events, {"mer_1": [ALL]})
    apply_ordering(planned, {}, settle_s=1.0)
    assert [p.due_in_s for p in planned] == [0.0, None, None]
    assert len({p.payload for p in planned}) == 3


def test_a_later_event_that_opens_its_key_waits_the_settle_time() -> None:
    pending = payment_lifecycle("mer_1", "pay_1")[1]
    [row] = plan_deliveries([pending], {"mer_1": [ALL]})
    apply_ordering([row], {}, settle_s=1.0)
    assert row.due_in_s == 1.0
    # ...unless the endpoint does not receive the earlier events at all.
    only_pending = Endpoint("we_2", "mer_1", frozenset({"payment.pending", "payment.success"}))
    [row] = plan_deliveries([pending], {"mer_1": [only_pending]})
    apply_ordering([row], {}, settle_s=1.0)
    assert row.due_in_s == 0.0


def test_an_earlier_event_arriving_late_goes_first_and_holds_the_later_one() -> None:
    created, pending, _ = payment_lifecycle("mer_1", "pay_1")
    waiting = UnattemptedDelivery(
        id="msg_pending",
        endpoint_id="we_1",
        order_key="pay_1",
        event_at=pending.occurred_at,
        event_id=uuid.UUID(pending.id),
        held=False,
        leased=False,
    )
    [row] = plan_deliveries([created], {"mer_1": [ALL]})
    decision = apply_ordering([row], {("we_1", "pay_1"): KeyState(seen=True, unattempted=[waiting])}, 1.0)
    assert row.due_in_s == 0.0
    assert decision.hold == ["msg_pending"]


def test_a_new_event_behind_an_unattempted_one_is_held() -> None:
    created, pending, _ = payment_lifecycle("mer_1", "pay_1")
    in_flight = UnattemptedDelivery(
        id="msg_created",
        endpoint_id="we_1",
        order_key="pay_1",
        event_at=created.occurred_at,
        event_id=uuid.UUID(created.id),
        held=False,
        leased=True,
    )
    [row] = plan_deliveries([pending], {"mer_1": [ALL]})
    decision = apply_ordering([row], {("we_1", "pay_1"): KeyState(seen=True, unattempted=[in_flight])}, 1.0)
    assert row.due_in_s is None
    assert decision.hold == [] and decision.release == []


def test_a_key_already_seen_sends_at_once() -> None:
    success = payment_lifecycle("mer_1", "pay_1")[2]
    [row] = plan_deliveries([success], {"mer_1": [ALL]})
    apply_ordering([row], {("we_1", "pay_1"): KeyState(seen=True)}, 1.0)
    assert row.due_in_s == 0.0
