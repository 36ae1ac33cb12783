"""What each event becomes for Socket.IO clients (pure functions, no servers)."""

from __future__ import annotations

from notifier.notifications import masked_token, notifications_for
from paystream.events import Event, EventType
from paystream_devstack.testing.notifier_client import MERCHANT_A, payment_event


def names_and_rooms(event: Event) -> list[tuple[str, tuple[str, ...]]]:
    return [(emission.name, emission.rooms) for emission in notifications_for(event)]


def test_only_transitions_into_a_final_state_complete_a_payment() -> None:
    merchant_room = f"merchant:{MERCHANT_A}"
    salon_room = f"salon:{MERCHANT_A}:SALON1"
    payment_room = f"payment:{MERCHANT_A}:ord_test_001"

    for event_type in (EventType.PAYMENT_SUCCESS, EventType.PAYMENT_FAILED):
        assert names_and_rooms(payment_event(event_type, salon_id="SALON1")) == [
            ("payment:status-update", (merchant_room, salon_room)),
            ("payment:completed", (payment_room,)),
        ]
    for event_type in (EventType.PAYMENT_CREATED, EventType.PAYMENT_PENDING, EventType.PAYMENT_CAPTURED):
        assert names_and_rooms(payment_event(event_type)) == [("payment:status-update", (merchant_room,))]


def test_statuses_are_upper_case_and_payloads_carry_the_contract_fields() -> None:
    event = payment_event(EventType.PAYMENT_PENDING, amount=12345)
    (update,) = notifications_for(event)

    assert update.payload == {
        "invoiceId": "ord_test_001",
        "paymentId": "pay_AAAAAAAAAAAAAAAA",
        "status": "PENDING",
        "amount": 12345,
        "currency": "INR",
        "timestamp": event.occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventId": event.id,
    }


def test_events_outside_the_contract_notify_nobody() -> None:
    no_invoice = payment_event(EventType.PAYMENT_SUCCESS, invoice_id=None)
    assert [emission.name for emission in notifications_for(no_invoice)] == ["payment:status-update"]
    assert notifications_for(Event(type=EventType.PAYMENT_SUCCESS, merchant_id=MERCHANT_A, data={})) == []
    assert notifications_for(Event(type=EventType.WEBHOOK_TEST, merchant_id=MERCHANT_A, data={})) == []
    dispute = Event(type=EventType.DISPUTE_CREATED, merchant_id=MERCHANT_A, data={"dispute": {"id": "d"}})
    assert notifications_for(dispute) == []


def test_token_notifications_carry_masked_card_data_only() -> None:
    token = {
        "tokenId": "tok_1",
        "maskedCardNo": "4111********1111",
        "exp": "12/30",
        "cardNumber": "4111111111111111",
        "number": 4111111111111111,
        "nickname": "4111-1111-1111-1111",
        "cvv": "123",
        "holder_name": "A Customer",
    }

    assert masked_token(token) == {
        "tokenId": "tok_1",
        "maskedCardNo": "4111********1111",
        "expiry": "12/30",
        "holderName": "A Customer",
    }
    without_salon = Event(type=EventType.TOKEN_SAVED, merchant_id=MERCHANT_A, data={"token": token})
    assert names_and_rooms(without_salon) == [("payment:token-saved", (f"merchant:{MERCHANT_A}",))]
