"""Forward-only state for provider objects: a status moves only to a higher rank.

Providers do not keep order (`payment.captured` may arrive before `payment.authorized`, a dispute's
`created` after its `won`), so every typed table keeps `status_rank`, and `advance()` applies an
event's view of an object only when:

- the object is new (inserted), or
- the event's status ranks higher than the stored one, or
- it ranks the same, that rank is not final, and the event is not older than the one stored
  (`provider_event_at`): a newer snapshot of the same stage refreshes amounts and details.

The row is locked (`FOR UPDATE`) between reading and writing, so two events about one object
handled at once serialise on it, whatever order they commit in.

An object is (provider, merchant, id): a provider's ids are unique only within one merchant's
account, so another merchant's event naming the same id is about another object, and never finds,
locks or changes this one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from payment_processor.provider_events.work import Work


@dataclass(frozen=True, slots=True)
class EntityTable:
    """A typed table: its name, its id column (with `provider` and `merchant_id`, the key) and its
    final rank."""

    name: str
    key: str
    entity: str
    final_rank: int
    # Columns that keep their first non-null value (where an object belongs never moves).
    sticky: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Transition:
    row: asyncpg.Record
    before: str | None
    """The status before this event (None: the object is new)."""
    applied: bool
    """The event's view was written (new, higher rank, or a newer snapshot of the same rank)."""

    @property
    def status(self) -> str:
        status: str = self.row["status"]
        return status

    @property
    def status_changed(self) -> bool:
        return self.applied and self.before != self.status


@dataclass(frozen=True, slots=True)
class Advance:
    """One object's move as an event sees it: what `advance()` applies."""

    table: EntityTable
    entity_id: str
    status: str
    rank: int
    columns: Mapping[str, Any]

    def values(self, work: Work) -> dict[str, Any]:
        """The row this event would write, every column by name."""
        event = work.event
        return {
            "provider": event.provider,
            self.table.key: self.entity_id,
            "merchant_id": event.merchant_id,
            "status": self.status,
            "status_rank": self.rank,
            "provider_event_at": event.occurred_at,
            "last_event_id": event.event_id,
            **self.columns,
        }


async def advance(
    work: Work,
    table: EntityTable,
    entity_id: str,
    *,
    status: str,
    rank: int,
    columns: Mapping[str, Any],
) -> Transition:
    """Insert or move the object `entity_id` of `table` forward to `status` (see the module doc)."""
    return await apply(work, Advance(table, entity_id, status, rank, columns))


async def apply(work: Work, move: Advance) -> Transition:
    """`advance()` of a planned move."""
    table, values = move.table, move.values(work)
    names = list(values)
    placeholders = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    inserted = await work.conn.fetchrow(
        f"""INSERT INTO {table.name} ({", ".join(names)}) VALUES ({placeholders})
            ON CONFLICT (provider, merchant_id, {table.key}) DO NOTHING RETURNING *""",
        *values.values(),
    )
    if inserted is not None:
        work.change(table.entity, move.entity_id, None, move.status)
        return Transition(inserted, None, applied=True)
    return await _move_existing(work, move, values)


async def apply_many(moves: Sequence[tuple[Work, Advance]]) -> list[Transition]:
    """`apply()` of several events' moves in one statement for the new objects: one multi-row
    INSERT, then the usual lock, compare and update for each object that already existed.

    The moves must be of one table, with the same columns, on distinct objects, each work on the
    same connection: then no move can see another's effect, and the result is the same as applying
    them one after another. Transitions come back in the order of `moves`."""
    if not moves:
        return []
    table = moves[0][1].table
    rows = [move.values(work) for work, move in moves]
    names = list(rows[0])
    if any(move.table != table for _, move in moves) or any(list(row) != names for row in rows):
        raise ValueError("apply_many takes moves of one table with the same columns")
    conn = moves[0][0].conn
    columns = ", ".join(names)
    # The rows travel as one jsonb document, typed by the table's own row type: one statement text
    # whatever the batch size, so one prepared statement.
    inserted = await conn.fetch(
        f"""INSERT INTO {table.name} ({columns})
            SELECT {columns} FROM jsonb_populate_recordset(NULL::{table.name}, $1::jsonb)
            ON CONFLICT (provider, merchant_id, {table.key}) DO NOTHING RETURNING *""",
        rows,
    )
    new = {(row["provider"], row["merchant_id"], row[table.key]): row for row in inserted}
    transitions: list[Transition] = []
    for (work, move), values in zip(moves, rows, strict=True):
        row = new.get((work.event.provider, work.event.merchant_id, move.entity_id))
        if row is not None:
            work.change(table.entity, move.entity_id, None, move.status)
            transitions.append(Transition(row, None, applied=True))
        else:
            transitions.append(await _move_existing(work, move, values))
    return transitions


async def _move_existing(work: Work, move: Advance, values: Mapping[str, Any]) -> Transition:
    """The object exists (its insert conflicted): lock it, and move it if the event may."""
    conn, event, table, entity_id = work.conn, work.event, move.table, move.entity_id
    current = await conn.fetchrow(
        f"SELECT * FROM {table.name} WHERE provider = $1 AND merchant_id = $2 AND {table.key} = $3 FOR UPDATE",
        event.provider,
        event.merchant_id,
        entity_id,
    )
    assert current is not None  # the insert conflicted, and rows are never deleted
    stored_rank: int = current["status_rank"]
    stored_at = current["provider_event_at"]
    newer = stored_at is None or event.occurred_at >= stored_at
    rank = move.rank
    if not (rank > stored_rank or (rank == stored_rank and rank < table.final_rank and newer)):
        return Transition(current, current["status"], applied=False)
    updates = [name for name in values if name not in ("provider", table.key, "merchant_id")]
    assignments = ", ".join(
        f"{name} = COALESCE({table.name}.{name}, ${n})" if name in table.sticky else f"{name} = ${n}"
        for n, name in enumerate(updates, start=4)
    )
    row = await conn.fetchrow(
        f"""UPDATE {table.name} SET {assignments}, updated_at = now()
            WHERE provider = $1 AND merchant_id = $2 AND {table.key} = $3 RETURNING *""",
        event.provider,
        event.merchant_id,
        entity_id,
        *(values[name] for name in updates),
    )
    assert row is not None
    if row["status"] != current["status"]:
        work.change(table.entity, entity_id, current["status"], row["status"])
    return Transition(row, current["status"], applied=True)


@dataclass(frozen=True, slots=True)
class PlannedHandler:
    """An event handler whose first write is one object's move, planned from the event alone.

    `plan` reads the event and says the move (raising `Rejected` like any handler); `follow_up`
    acts on the transition (emits, records owners, any further writes). Called, it is an ordinary
    handler. The batch runner instead plans every event of a batch, applies the moves with
    `apply_many` (one INSERT for the batch's new objects), then runs each follow-up in claim order.
    """

    plan: Callable[[Work], Advance]
    follow_up: Callable[[Work, Transition], Awaitable[None]]

    async def __call__(self, work: Work) -> None:
        await self.follow_up(work, await apply(work, self.plan(work)))
