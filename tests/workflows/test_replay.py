"""Every recorded journey path (tests/histories/*.json) replays against today's code.

A change that would break a sleeping journey (a new command, a reordered step, a
different timer) makes the replay non-deterministic and fails here. Evolve the
workflow with ``workflow.patched`` instead (README: "Changing a journey safely").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from engine.platform.codec.payloads import DATA_CONVERTER
from workflows.order_journey import OrderJourney

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
    } <= names
    # The replenishment path spans continue-as-new: every run is kept.
    assert any(path.name.endswith(".run2.json") for path in HISTORIES)


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    text = await asyncio.to_thread(path.read_text)
    history = WorkflowHistory.from_json(f"replay-{path.stem}", text)
    replayer = Replayer(workflows=[OrderJourney], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
