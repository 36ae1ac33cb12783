"""Room names and who an emission reaches.

Clients know rooms by the names in the contract (`merchant:<merchant_id>`, `salon:<salon_id>`,
`payment:<invoiceId>`), but salon and invoice ids are only unique per merchant: two merchants may
both have invoice `ord_test_001`. Server-side, salon and payment rooms are therefore scoped by
merchant (`salon:<merchant>:<salon>`, `payment:<merchant>:<invoice>`), and the auth layer refuses ids
containing a colon, so one tenant's room name can never spell another's.

Every socket joins its merchant room (but a checkout's, scoped to one invoice, which joins nothing
until it subscribes to that invoice); a token with a salon also joins the salon room. A salon-scoped
socket is not a merchant-wide viewer: through the merchant room it receives only its own salon's
events, so salons of one merchant stay isolated from one another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from notifier.auth import Principal


def merchant_room(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


def salon_room(merchant_id: str, salon_id: str) -> str:
    return f"salon:{merchant_id}:{salon_id}"


def payment_room(merchant_id: str, invoice_id: str) -> str:
    return f"payment:{merchant_id}:{invoice_id}"


def rooms_on_connect(principal: Principal) -> frozenset[str]:
    if principal.invoice_id is not None:
        return frozenset()  # a checkout's token: only the payment room of its invoice, on subscribe
    rooms = {merchant_room(principal.merchant_id)}
    if principal.salon_id is not None:
        rooms.add(salon_room(principal.merchant_id, principal.salon_id))
    return frozenset(rooms)


@dataclass(frozen=True, slots=True)
class Emission:
    """One Socket.IO event to send to the sockets in some rooms of one merchant."""

    name: str
    payload: dict[str, Any]
    rooms: tuple[str, ...]
    merchant_id: str
    salon_id: str | None


def reaches_via(principal: Principal, emission: Emission, room: str) -> bool:
    """Whether a socket of `principal` that is in `room` receives `emission` through it."""
    if emission.merchant_id != principal.merchant_id:
        return False
    if room == merchant_room(principal.merchant_id) and principal.salon_id is not None:
        return emission.salon_id == principal.salon_id
    return True


def rooms_reached(principal: Principal, emission: Emission, rooms: Iterable[str]) -> frozenset[str]:
    """The rooms among `rooms` through which `emission` reaches a socket of `principal`."""
    joined = set(rooms)
    return frozenset(
        room for room in emission.rooms if room in joined and reaches_via(principal, emission, room)
    )
