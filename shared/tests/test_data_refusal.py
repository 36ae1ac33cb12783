"""`data_refusal`: the database's refusals of a statement's data (SQLSTATE class 22, and values asyncpg
cannot encode), named without repeating the refused value; anything else is not one."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from paystream.db import data_refusal

SECRET = "card-4111"


@pytest.mark.parametrize(
    ("statement", "argument", "says"),
    [
        ("SELECT $1::text", f"{SECRET}\x00", "NUL"),
        ("SELECT $1::jsonb", {"note": f"{SECRET}\x00"}, "NUL"),
        ("SELECT $1::bigint", 2**63, "number is out of the range"),  # refused by asyncpg
        ("SELECT $1::jsonb", {"amount": 10**25}, "number is out of the range"),  # by the JSON encoder
        ("SELECT ($1::text)::bigint", "99999999999999999999", "number is out of the range"),
        ("SELECT ($1::text)::timestamptz", "9999999-01-01", "date or time"),
        ("SELECT ($1::text)::int", SECRET, "malformed"),
    ],
)
async def test_a_refusal_of_the_data_is_named_without_the_value(
    db_pool: asyncpg.Pool, statement: str, argument: Any, says: str
) -> None:
    with pytest.raises(asyncpg.exceptions.DataError) as refused:
        await db_pool.fetchval(statement, argument)
    reason = data_refusal(refused.value)
    assert reason is not None and says in reason, reason
    assert "SQLSTATE 22" in reason
    for value in (SECRET, "99999999999999999999", "9999999", str(2**63)):
        assert value not in reason


async def test_other_errors_are_not_refusals_of_the_data(db_pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.PostgresError) as failed:
        await db_pool.execute("SELECT * FROM no_such_table")
    assert data_refusal(failed.value) is None
    assert data_refusal(ValueError("x")) is None
