"""Pure parts of the dispatcher: signatures, the retry schedule, the address policy, delivery plans."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from dispatcher_testkit import payment_created, payment_lifecycle

from paystream.errors import SettingsError
from paystream.events import Event, EventType
from paystream.netguard import UnsafeUrlError, is_public_address, parse_outbound_url
from paystream.ordering import ordering_key
from paystream.webhooks import standard_key
from webhook_dispatcher.models import Endpoint, IncomingEvent
from webhook_dispatcher.planning import plan_deliveries
from webhook_dispatcher.schedule import RetrySchedule, parse_retry_after
from webhook_dispatcher.settings import DispatcherSettings
from webhook_dispatcher.signing import legacy_signature, signed_headers, standard_signature

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
    assert None not in delays  # (or the range checks below would pass over every value)
    assert all(54 <= d <= 66 for d in delays if d is not None)
    assert len({round(d or 0, 3) for d in delays}) > 50
    last = [schedule.next_delay(4) for _ in range(50)]
    assert None not in last
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


def test_the_ordering_grace_period_outlasts_the_recovery_of_a_dead_consumers_entries(
    service_env: dict[str, str],
) -> None:
    # Default: twice the reclaim deadline, plus the reclaim sweep and a handler's run.
    assert DispatcherSettings.from_env(service_env).ordering_grace_s == 2 * 60 + 5 + 30
    fast = {
        **service_env,
        "DISPATCHER_RECLAIM_IDLE_MS": "5000",
        "DISPATCHER_HANDLER_TIMEOUT_S": "3",
        "WEBHOOK_HTTP_TIMEOUT_S": "2",
    }
    assert DispatcherSettings.from_env(fast).ordering_grace_s == 2 * 5 + 5 + 3
    assert DispatcherSettings.from_env({**fast, "WEBHOOK_ORDERING_GRACE_S": "600"}).ordering_grace_s == 600
    # Shorter than an entry of a crashed dispatcher takes to come back: refused, naming the variable.
    for too_short in ("13", "nan", "inf"):
        with pytest.raises(SettingsError, match="WEBHOOK_ORDERING_GRACE_S"):
            DispatcherSettings.from_env({**fast, "WEBHOOK_ORDERING_GRACE_S": too_short})


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
    created = payment_created("mer_1", "pay_1")
    assert ordering_key(created) == "pay_1"
    refund = Event(
        type=EventType.REFUND_CREATED,
        merchant_id="mer_1",
        data={"refund": {"id": "rfnd_1", "payment_id": "pay_1"}},
    )
    assert ordering_key(refund) == "pay_1"
    dispute = Event(
        type=EventType.DISPUTE_CREATED,
        merchant_id="mer_1",
        data={"dispute": {"id": "disp_1", "payment_id": "pay_1"}},
    )
    assert ordering_key(dispute) == "pay_1"
    token = Event(type=EventType.TOKEN_SAVED, merchant_id="mer_1", data={"token": {"last4": "1111"}})
    assert ordering_key(token) is None
    # A test send, and an event without a merchant, keep no order.
    assert ordering_key(Event(type=EventType.WEBHOOK_TEST, merchant_id="mer_1", data=created.data)) is None
    assert ordering_key(Event(type=EventType.PAYMENT_CREATED, merchant_id="", data=created.data)) is None


def test_a_number_comes_with_an_event_only_when_it_has_an_ordering_key() -> None:
    created = payment_created("mer_1", "pay_1")
    assert IncomingEvent.of(created, 3) == IncomingEvent(created, "pay_1", 3)
    assert IncomingEvent.of(created, None).sequence is None
    token = Event(type=EventType.TOKEN_SAVED, merchant_id="mer_1", data={})
    assert IncomingEvent.of(token, 3) == IncomingEvent(token, None, None)


def test_each_subscribed_endpoint_gets_a_row_with_the_events_number() -> None:
    events = payment_lifecycle("mer_1", "pay_1")
    only_success = Endpoint("we_2", "mer_1", frozenset({"payment.success"}))
    incoming = [IncomingEvent.of(event, n) for n, event in enumerate(events, start=1)]
    planned = plan_deliveries(incoming, {"mer_1": [ALL, only_success]})
    assert [(p.endpoint.id, p.event_type, p.ordering_seq) for p in planned] == [
        ("we_1", "payment.created", 1),
        ("we_1", "payment.pending", 2),
        ("we_1", "payment.success", 3),
        ("we_2", "payment.success", 3),
    ]
    assert all(p.order_key == "pay_1" for p in planned)
    assert len({p.id for p in planned}) == 4
