"""The ordering rule for a payment's webhooks, in one place: which first attempts may go, and when.

A payment's events share an ordering key (`paystream.ordering.ordering_key`, always scoped by the
merchant) and carry gapless numbers 1, 2, 3... assigned where they were written (the outbox; the
stream entry's `seq`). The dispatcher records, per (merchant, key), the numbers it has taken in
(`webhook_order_keys`), in the same transaction as the event's delivery rows. Every event counts,
whether or not an endpoint receives it: otherwise its successors would wait for it forever.

The rule. A delivery numbered n may make its first attempt once
  1. every event of its key numbered below n has been taken in, and
  2. no delivery of its key to the same endpoint numbered below n still waits for its first attempt
     (pending with no attempt yet: held, due, or in flight).
Until then it is held (`due_at` NULL). A delivery without a number (an event without a key,
`webhook.test`, an event written before numbering existed) is never held.

So an earlier event still on its way (in a dead consumer's pending list, in flight in another
replica, not yet published) holds its successors, and whatever takes it in, or records the first
attempt before them, releases them in the same transaction. That is the intake (`intake.py`: new
rows are written due or held, and the held rows its events unblock are released), the recorder
(`recorder.py`: a first attempt's outcome releases the next), and upkeep (`upkeep.py`: the safety net
for an event that never comes, dead-lettered or lost with Redis data: after a grace period its
number is given up on).

Serialisation: whoever changes a key's ordering state first locks the key's `webhook_order_keys`
row (an upsert, or `FOR UPDATE`, always in (merchant, key) order so that batches cannot deadlock),
and applies the rule in a later statement, whose snapshot therefore holds everything the previous
holder of the lock committed. Safety does not rest on the lock (a number once taken in stays taken
in, and the rows of the events before it committed with it); not missing a release does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from paystream.db import Connection

OrderKey = tuple[str, str]  # (merchant_id, order_key)

# The rule, for a delivery `d` that has a number. `k` is its key's row of webhook_order_keys (NULL
# until the key has taken in anything); `w` is its (endpoint, key)'s row of `first_waiting`: the
# smallest number among the deliveries still waiting for their first attempt, `d` among them, so
# that (2) reads "no smaller one waits". Held and new rows are all in `unattempted`.
MAY_MAKE_FIRST_ATTEMPT = """(
    coalesce(k.taken_through, 0) >= d.ordering_seq - 1
    AND d.ordering_seq <= w.first_seq)"""

# `unattempted` as stored: (endpoint_id, order_key, ordering_seq) of the deliveries of the keys in
# `keys` (merchant_id, order_key) that wait for their first attempt.
STORED_UNATTEMPTED = """
    SELECT p.endpoint_id, p.order_key, p.ordering_seq
    FROM webhook_deliveries p JOIN keys USING (merchant_id, order_key)
    WHERE p.status = 'pending' AND p.attempts = 0 AND p.ordering_seq IS NOT NULL"""

FIRST_WAITING = """
    SELECT endpoint_id, order_key, min(ordering_seq) AS first_seq FROM unattempted
    GROUP BY endpoint_id, order_key"""

# Release the held deliveries of `keys` that the rule now lets go.
RELEASE_UPDATE = f"""
    UPDATE webhook_deliveries d SET due_at = now(), next_retry_at = now(), updated_at = now()
    FROM keys LEFT JOIN webhook_order_keys k USING (merchant_id, order_key), first_waiting w
    WHERE d.merchant_id = keys.merchant_id AND d.order_key = keys.order_key
      AND w.endpoint_id = d.endpoint_id AND w.order_key = d.order_key
      AND d.status = 'pending' AND d.attempts = 0 AND d.due_at IS NULL AND d.ordering_seq IS NOT NULL
      AND {MAY_MAKE_FIRST_ATTEMPT}
    RETURNING d.id"""

KEYS = "SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS u(merchant_id, order_key)"

RELEASE_HELD = f"""
WITH keys AS ({KEYS}),
unattempted AS ({STORED_UNATTEMPTED}),
first_waiting AS ({FIRST_WAITING})
{RELEASE_UPDATE}"""

# Record the numbers taken in ($1 merchants, $2 keys, $3 numbers), creating a key's row on its
# first event; locks the keys' rows until the transaction ends. A number taken in twice (a
# redelivered event) changes nothing.
TAKE_IN = """
WITH taken AS (
    SELECT merchant_id, order_key, array_agg(seq) AS seqs
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(merchant_id, order_key, seq)
    GROUP BY merchant_id, order_key
)
INSERT INTO webhook_order_keys AS k (merchant_id, order_key, taken_through, taken_ahead)
SELECT t.merchant_id, t.order_key, f.taken_through, f.taken_ahead
FROM taken t CROSS JOIN LATERAL webhook_order_taken(0, t.seqs) f
ORDER BY t.merchant_id, t.order_key
ON CONFLICT (merchant_id, order_key) DO UPDATE
SET (taken_through, taken_ahead) = (
        SELECT f.taken_through, f.taken_ahead
        FROM webhook_order_taken(
            greatest(k.taken_through, EXCLUDED.taken_through), k.taken_ahead || EXCLUDED.taken_ahead
        ) f),
    updated_at = now()"""

LOCK_KEYS = """
SELECT 1 FROM webhook_order_keys k
JOIN unnest($1::text[], $2::text[]) AS u(merchant_id, order_key) USING (merchant_id, order_key)
ORDER BY k.merchant_id, k.order_key
FOR UPDATE OF k"""


def key_columns(keys: Iterable[OrderKey]) -> tuple[list[str], list[str]]:
    """Sorted, distinct keys as the two array parameters the statements take."""
    ordered = sorted(set(keys))
    return [merchant for merchant, _ in ordered], [key for _, key in ordered]


async def take_in(conn: Connection, numbered: Sequence[tuple[str, str, int]]) -> None:
    """Inside the caller's transaction: record (merchant, key, number) as taken in, locking the keys."""
    if numbered:
        ordered = sorted(set(numbered))
        await conn.execute(
            TAKE_IN, [m for m, _, _ in ordered], [k for _, k, _ in ordered], [n for *_, n in ordered]
        )


async def lock_keys(conn: Connection, keys: Iterable[OrderKey]) -> None:
    """Inside the caller's transaction: lock the keys' ordering state until it ends."""
    merchants, order_keys = key_columns(keys)
    if merchants:
        await conn.execute(LOCK_KEYS, merchants, order_keys)


# Whether any delivery of these merchants' keys is held (a superset of the keys: merchants x keys),
# from the unattempted index. A cheap gate before RELEASE_HELD, whose planning alone costs more than
# this whole statement: most events have nothing held behind them.
ANY_HELD = """
SELECT EXISTS (
    SELECT 1 FROM webhook_deliveries
    WHERE merchant_id = ANY($1::text[]) AND order_key = ANY($2::text[])
      AND status = 'pending' AND attempts = 0 AND ordering_seq IS NOT NULL AND due_at IS NULL)"""


async def release_if_held(conn: Connection | asyncpg.Pool, keys: Iterable[OrderKey]) -> list[str]:
    """`release_held`, after a cheap check that anything of these keys is held at all. Safe as a
    gate after the statement that took the keys' numbers in has committed: a delivery held before
    it is seen here, and one held after it was written by a transaction that saw those numbers and
    applied the rule itself. Safe too with the keys locked (`lock_keys`) in the caller's
    transaction: a delivery is held only by a transaction that holds its key's lock, so every held
    one is committed by then, and a later one sees this transaction's outcome."""
    merchants, order_keys = key_columns(keys)
    if not merchants or not await conn.fetchval(ANY_HELD, merchants, order_keys):
        return []
    return await release_held(conn, keys)


async def release_held(conn: Connection | asyncpg.Pool, keys: Iterable[OrderKey]) -> list[str]:
    """Release the held deliveries of `keys` that may now go; returns their ids. Call it after the
    statement that locked the keys, never in it (see the module docstring)."""
    merchants, order_keys = key_columns(keys)
    if not merchants:
        return []
    return [row["id"] for row in await conn.fetch(RELEASE_HELD, merchants, order_keys)]
