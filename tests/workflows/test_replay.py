"""Every recorded journey path (tests/histories/*.json) replays against today's code.

A change that would break a sleeping journey (a new command, a reordered step, a
different timer) makes the replay non-deterministic and fails here. Evolve the
workflow with ``workflow.patched`` instead (docs/development.md: "Changing a journey safely").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from engine.platform.codec.payloads import DATA_CONVERTER
from workflows.order_journey import OrderJourney
from workflows.scheduler import PlannedSend
from workflows.state import JourneyInput, JourneyState

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def test_every_plan_path_has_a_history() -> None:
    names = {path.name.split(".")[0] for path in HISTORIES}
    assert {
        "default_promoter",
        "default_passive",
        "default_detractor",
        "default_no_answer",
        "default_shipping_delay",
        "default_order_cancelled",
        "default_operator_stop",
        "default_returned",
        "consumables_replenishment",
        # Paths behind workflow.patched, signals and fallbacks.
        "default_plan_at_start",
        "default_frequency_cap_stale",
        "consumables_frequency_cap_deferred",
        "default_cancel_during_send",
        "default_preferences_changed",
        "default_address_changed",
        "default_sms_fallback",
        # Push passed over without an app device, tried once one is known.
        "default_push_devices",
        # Sends held by pauses: a scope pause lifted, one outlasting stale_after, a
        # journey's own pause.
        "default_paused_then_resumed",
        "default_paused_until_stale",
        "default_journey_paused",
        # Journeys whose sends run beside the loop.
        "beside_plan_at_start",
        "beside_detractor",
        "beside_returned",
        "beside_refund_during_retry",
        "beside_replenishment",
        # Stage changes and ends reported by a local activity, after a cancel too.
        "events_detractor",
        "events_operator_stop",
        # Steps with an experiment: an arm sent, a customer held out.
        "experiment_promoter",
        "experiment_holdout",
    } <= names
    # The replenishment path spans continue-as-new: every run is kept.
    assert any(path.name.endswith(".run2.json") for path in HISTORIES)


async def replay(path: Path, journey: type = OrderJourney) -> Exception | None:
    text = await asyncio.to_thread(path.read_text)
    history = WorkflowHistory.from_json(f"replay-{path.stem}", text)
    replayer = Replayer(workflows=[journey], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    failure = await replay(path)
    assert failure is None, f"{path.name}: {failure}"


@workflow.defn(name="OrderJourney", sandboxed=False)
class SupersedeFirst(OrderJourney):
    """The journey with a step moved: a consumables order tells the customer's older
    journeys to stop their reminders before its confirmation goes out, not after.
    (Unsandboxed: the sandbox would import this test module again and find two
    workflows of one name.)"""

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyState:
        return await super().run(journey)

    async def _perform(self, send: PlannedSend) -> None:
        plan = self._plan.plan if self._plan else None
        if plan is not None and plan.replenishment and not self._state.older_journeys_told:
            self._state.older_journeys_told = True
            await self._supersede_older_reminders()
        await super()._perform(send)


async def test_a_reordered_step_fails_the_replay() -> None:
    """The negative control: the replay is not blind to a step moved in the code."""
    path = next(p for p in HISTORIES if p.stem == "consumables_replenishment.run1")
    assert await replay(path) is None
    failure = await replay(path, SupersedeFirst)
    assert failure is not None
    assert "nondetermin" in str(failure).lower(), failure
