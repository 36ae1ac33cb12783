"""The collector settings a service applies once it has started."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from paystream.gctuning import YOUNG_GENERATION_THRESHOLD, freeze_startup_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_startup_heap_is_frozen_and_young_collections_are_rarer(restored_gc: None) -> None:
    built_at_startup = [{"route": n} for n in range(1000)]
    older, oldest = gc.get_threshold()[1:]

    freeze_startup_heap()

    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, older, oldest)
    # Frozen objects are in no generation the collector walks.
    assert all(len(gc.get_objects(generation=g)) < len(built_at_startup) for g in range(3))


def test_cycles_made_after_the_freeze_are_still_collected(restored_gc: None) -> None:
    freeze_startup_heap()

    class Node:
        pass

    collected: list[bool] = []
    node = Node()
    node.self = node  # type: ignore[attr-defined]
    weakref.finalize(node, collected.append, True)
    del node
    gc.collect()
    assert collected == [True]
