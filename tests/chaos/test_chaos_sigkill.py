"""SIGKILL each service in turn under steady load, and start it again: every accepted payment and
provider webhook reaches its final state exactly once, every merchant delivery happens (under one
webhook-id per event), every pending list drains, the outbox empties, and a frontend that
reconnects with `lastEventId` sees every payment complete."""

from __future__ import annotations

import pytest
from chaos_scenario import ScenarioFactory
from platform_stack import NOTIFIER, SERVICES

pytestmark = pytest.mark.chaos


async def test_each_service_killed_in_turn_under_load_loses_and_repeats_nothing(
    open_scenario: ScenarioFactory,
) -> None:
    scenario = await open_scenario(tag="kill")
    load = await scenario.load.start()
    await load.until_accepted(20)
    for service in SERVICES:
        await scenario.stack.sigkill_and_restart(service)
        if service == NOTIFIER:
            assert scenario.watcher is not None
            await scenario.watcher.reconnect_after_drop()
        await load.until_accepted(20)  # the load flows again before the next kill
    await load.run_for(1.0)

    await scenario.settle_and_verify()
