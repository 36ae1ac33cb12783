"""`payctl provider-events`: how many stored provider webhooks wait, which ended `failed`, and the
re-drive that puts those back to wait (waking the processors)."""

from __future__ import annotations

import asyncio

import asyncpg
from payctl_testkit import Payctl

from paystream.db import connect

INSERT = """INSERT INTO provider_events
                (provider, event_id, type, merchant_id, payload, status, attempts, last_error, received_at)
            VALUES ('razorpay', $1, 'payment.captured', $2, '{}', $3, $4, $5, now() - make_interval(secs => $6))"""


async def seed(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute(INSERT, "evt_waiting_old", "mer_a", "received", 0, None, 90)
        await conn.execute(INSERT, "evt_waiting_new", "mer_b", "received", 2, "DeadlockDetectedError", 1)
        await conn.execute(INSERT, "evt_failed", "mer_a", "failed", 5, "RuntimeError: a bug", 30)
        await conn.execute(INSERT, "evt_done", "mer_a", "processed", 0, None, 300)
    finally:
        await conn.close()


async def test_it_counts_the_waiting_and_lists_the_failed(payctl: Payctl, clean_db: str) -> None:
    await seed(clean_db)
    result = await payctl("provider-events", "--json", env={"DATABASE_URL": clean_db})
    assert result.returncode == 0, result.stderr
    body = result.json()
    assert (body["waiting"], body["failed"], body["redriven"]) == (2, 1, 0)
    assert 89 <= body["oldest_waiting_s"] < 120
    [failed] = body["failed_events"]
    assert (failed["event_id"], failed["merchant_id"], failed["attempts"]) == ("evt_failed", "mer_a", 5)
    assert failed["last_error"] == "RuntimeError: a bug"

    text = await payctl("provider-events", env={"DATABASE_URL": clean_db})
    assert text.returncode == 0, text.stderr
    assert "waiting:" in text.stdout and "evt_failed" in text.stdout and "RuntimeError: a bug" in text.stdout
    assert "evt_waiting_old" not in text.stdout  # only the failed ones are listed


async def test_redrive_puts_the_failed_back_to_wait_and_wakes_the_processors(
    payctl: Payctl, clean_db: str
) -> None:
    await seed(clean_db)
    woken: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(clean_db)
    try:
        await listener.add_listener("provider_events", lambda *args: woken.put_nowait(args[2]))
        result = await payctl("provider-events", "--redrive", "--json", env={"DATABASE_URL": clean_db})
        assert result.returncode == 0, result.stderr
        assert await asyncio.wait_for(woken.get(), timeout=10) == "provider_events"
    finally:
        await listener.close()
    body = result.json()
    assert (body["redriven"], body["waiting"], body["failed"], body["failed_events"]) == (1, 3, 0, [])
    conn = await connect(clean_db)
    try:
        row = await conn.fetchrow(
            "SELECT status, attempts FROM provider_events WHERE event_id = 'evt_failed'"
        )
    finally:
        await conn.close()
    assert (row["status"], row["attempts"]) == ("received", 0)
