"""Fixtures of the processor's tests: the session's database, emptied for each test that asks."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest

# The suite runs with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
async def pool(clean_db: str, db_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The session's pool on a database emptied for this test."""
    return db_pool
