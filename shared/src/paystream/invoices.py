"""Invoice ownership: who may watch `payment:<invoiceId>` on the notifier."""

from __future__ import annotations

import asyncpg

from paystream.db import Connection


async def record_invoice_owner(
    conn: Connection, merchant_id: str, invoice_id: str, salon_id: str | None = None
) -> None:
    """Note that `invoice_id` belongs to the merchant (and salon); call it in the payment's transaction.
    The first salon recorded for an invoice stays: a later event cannot move it to another salon."""
    await conn.execute(
        """INSERT INTO invoice_owners (merchant_id, invoice_id, salon_id) VALUES ($1, $2, $3)
           ON CONFLICT (merchant_id, invoice_id)
           DO UPDATE SET salon_id = COALESCE(invoice_owners.salon_id, EXCLUDED.salon_id)""",
        merchant_id,
        invoice_id,
        salon_id,
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
