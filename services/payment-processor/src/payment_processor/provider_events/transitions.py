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

from collections.abc import Mapping
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
    conn, event = work.conn, work.event
    values: dict[str, Any] = {
        "provider": event.provider,
        table.key: entity_id,
        "merchant_id": event.merchant_id,
        "status": status,
        "status_rank": rank,
        "provider_event_at": event.occurred_at,
        "last_event_id": event.event_id,
        **columns,
    }
    names = list(values)
    placeholders = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    inserted = await conn.fetchrow(
        f"""INSERT INTO {table.name} ({", ".join(names)}) VALUES ({placeholders})
            ON CONFLICT (provider, merchant_id, {table.key}) DO NOTHING RETURNING *""",
        *values.values(),
    )
    if inserted is not None:
        work.change(table.entity, entity_id, None, status)
        return Transition(inserted, None, applied=True)
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
    if not (rank > stored_rank or (rank == stored_rank and rank < table.final_rank and newer)):
        return Transition(current, current["status"], applied=False)
    updates = [name for name in names if name not in ("provider", table.key, "merchant_id")]
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
