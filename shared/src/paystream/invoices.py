"""Invoice ownership: who may watch `payment:<invoiceId>` on the notifier."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from paystream.db import Connection


@dataclass(frozen=True, slots=True)
class InvoiceOwner:
    merchant_id: str
    invoice_id: str
    salon_id: str | None = None


async def record_invoice_owner(
    conn: Connection, merchant_id: str, invoice_id: str, salon_id: str | None = None
) -> None:
    """Note that `invoice_id` belongs to the merchant (and salon); call it in the payment's transaction.
    The first salon recorded for an invoice stays: a later event cannot move it to another salon."""
    await record_invoice_owners(conn, [InvoiceOwner(merchant_id, invoice_id, salon_id)])


async def record_invoice_owners(conn: Connection, owners: Iterable[InvoiceOwner]) -> None:
    """`record_invoice_owner` for many invoices in one statement (earlier ones first: the first
    salon named for an invoice wins, here as across transactions)."""
    salons: dict[tuple[str, str], str | None] = {}
    for owner in owners:
        key = (owner.merchant_id, owner.invoice_id)
        if salons.get(key) is None:  # not seen yet, or seen without a salon: this one may name it
            salons[key] = owner.salon_id
    if not salons:
        return
    keys = sorted(salons)  # one lock order for every writer
    await conn.execute(
        """INSERT INTO invoice_owners (merchant_id, invoice_id, salon_id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
           ON CONFLICT (merchant_id, invoice_id)
           DO UPDATE SET salon_id = COALESCE(invoice_owners.salon_id, EXCLUDED.salon_id)""",
        [merchant_id for merchant_id, _ in keys],
        [invoice_id for _, invoice_id in keys],
        [salons[key] for key in keys],
    )


async def invoice_visible_to(
    conn: Connection | asyncpg.Pool, merchant_id: str, invoice_id: str, salon_id: str | None
) -> bool:
    """True when the invoice belongs to the merchant, and to the salon when one is given."""
    row = await conn.fetchrow(
        "SELECT salon_id FROM invoice_owners WHERE merchant_id = $1 AND invoice_id = $2",
        merchant_id,
        invoice_id,
    )
    if row is None:
        return False
    return salon_id is None or row["salon_id"] == salon_id
