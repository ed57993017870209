"""Replaying decoded histories against the workflow code importable in this process.

The workflows are imported from ``workflows``, so whatever tree is first on
``sys.path`` is the code judged: the working tree, or a build about to ship.
Histories are already decoded (:mod:`engine.journeys.replay.decoding`), so the
replayer needs only the plain payload converter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from engine.platform.codec.payloads import DATA_CONVERTER
from workflows.erasure import CustomerErasure, ErasureSweep
from workflows.order_journey import OrderJourney

REPLAYED_WORKFLOWS: tuple[type, ...] = (OrderJourney, CustomerErasure, ErasureSweep)

# The mismatch as Core words it, inside the activation failure the SDK reports.
_MISMATCH = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
# Quoted names in the mismatch ("scheduled event 'send_message'"), to pick the event.
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True)
class ReplayFailure:
    """Why a history did not replay: ``nondeterministic`` when the code would issue
    different commands than the history recorded."""

    nondeterministic: bool
    message: str
    event_id: int | None


_TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
_TASK_SCHEDULED = EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED


def replayer() -> Replayer:
    return Replayer(workflows=list(REPLAYED_WORKFLOWS), data_converter=DATA_CONVERTER)


async def replay_one(replaying: Replayer, history: WorkflowHistory) -> ReplayFailure | None:
    failure = await _failure_of(replaying, history)
    if failure is None:
        return None
    message = str(failure)
    found = _MISMATCH.search(message)
    mismatch = found.group(1) if found else message
    nondeterministic = isinstance(failure, NondeterminismError)
    event_id = await _diverging_event(replaying, history, mismatch) if nondeterministic else None
    return ReplayFailure(nondeterministic, mismatch, event_id)


async def _failure_of(replaying: Replayer, history: WorkflowHistory) -> Exception | None:
    result = await replaying.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


async def _diverging_event(
    replaying: Replayer, history: WorkflowHistory, mismatch: str
) -> int | None:
    """The id of the history event the code no longer matches.

    The SDK's error does not name it, so the history is cut after each workflow
    task's commands and replayed again: the first workflow task whose cut fails
    (found by bisection, a few replays) issued the commands that differ; among the
    events it recorded, the one the mismatch names (e.g. its activity type), else
    the first.
    """
    events = list(history.events)
    tasks = [i for i, e in enumerate(events) if e.event_type == _TASK_COMPLETED]
    if not tasks:
        return None

    def cut(task: int) -> int:
        """Index just past the events workflow task ``task`` recorded."""
        for i in range(tasks[task] + 1, len(events)):
            if events[i].event_type == _TASK_SCHEDULED:
                return i
        return len(events)

    low, high = 0, len(tasks) - 1
    while low < high:
        middle = (low + high) // 2
        prefix = WorkflowHistory(history.workflow_id, events[: cut(middle)])
        if await _failure_of(replaying, prefix) is None:
            low = middle + 1
        else:
            high = middle
    recorded = events[tasks[low] + 1 : cut(low)]
    if not recorded:
        return events[tasks[low]].event_id
    names = set(_QUOTED.findall(mismatch))
    for event in recorded:
        if names and any(name in str(event) for name in names):
            return event.event_id
    return recorded[0].event_id
