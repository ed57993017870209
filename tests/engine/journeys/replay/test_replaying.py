"""The replay names the event a changed journey no longer matches: a recorded history
replayed against the journey with a step moved (tests/workflows/test_replay.py)."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from engine.journeys.replay.replaying import replay_one, replayer
from engine.platform.codec.payloads import DATA_CONVERTER
from tests.workflows.test_replay import SupersedeFirst

RECORDED = Path(__file__).resolve().parents[3] / "histories" / "consumables_replenishment.run1.json"


async def test_the_diverging_event_is_named() -> None:
    history = WorkflowHistory.from_json(RECORDED.stem, RECORDED.read_text())
    assert await replay_one(replayer(), history) is None

    changed = Replayer(workflows=[SupersedeFirst], data_converter=DATA_CONVERTER)
    failure = await replay_one(changed, history)
    assert failure is not None
    assert failure.nondeterministic
    assert "Nondeterminism" in failure.message
    assert failure.event_id is not None
    [event] = [e for e in history.events if e.event_id == failure.event_id]
    # The recorded command the moved step now comes before: the confirmation's send.
    assert event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    assert event.activity_task_scheduled_event_attributes.activity_type.name == "send_message"
