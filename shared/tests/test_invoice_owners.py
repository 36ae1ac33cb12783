"""Invoice ownership: the first salon named for an invoice stays, within one statement as across
transactions, and a later event may only fill in a salon that was missing."""

from __future__ import annotations

import asyncpg

from paystream.invoices import InvoiceOwner, invoice_visible_to, record_invoice_owner, record_invoice_owners


async def test_the_first_salon_named_wins_within_a_batch_and_after_it(
    db_pool: asyncpg.Pool, clean_db: str
) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        await record_invoice_owners(
            conn,
            [
                InvoiceOwner("mer_a", "inv_1", None),
                InvoiceOwner("mer_a", "inv_1", "SALON1"),  # fills in the missing salon
                InvoiceOwner("mer_a", "inv_1", "SALON2"),  # cannot move it
                InvoiceOwner("mer_b", "inv_1", "SALON9"),  # another merchant's invoice of that id
            ],
        )
    await record_invoice_owner(db_pool, "mer_a", "inv_1", "SALON3")  # type: ignore[arg-type]
    rows = await db_pool.fetch("SELECT merchant_id, salon_id FROM invoice_owners ORDER BY merchant_id")
    assert [(row["merchant_id"], row["salon_id"]) for row in rows] == [
        ("mer_a", "SALON1"),
        ("mer_b", "SALON9"),
    ]
    assert await invoice_visible_to(db_pool, "mer_a", "inv_1", "SALON1")
    assert not await invoice_visible_to(db_pool, "mer_a", "inv_1", "SALON3")
    assert not await invoice_visible_to(db_pool, "mer_c", "inv_1", None)
