"""What one journey costs Temporal, read from its history: events, activities, timers,
signals, search-attribute upserts, and the bytes of every payload in it.

The recorded histories (tests/histories/*.json) are one file per workflow run; the
runs of one journey (``name.run1.json``, ``name.run2.json``...) are added together.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

HISTORIES = Path(__file__).resolve().parents[2] / "tests" / "histories"

_COUNTED = {
    "activities": "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    "timers": "EVENT_TYPE_TIMER_STARTED",
    "signals": "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
    "upserts": "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "workflow_tasks": "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
}


@dataclass(frozen=True)
class HistoryCost:
    runs: int
    events: int
    activities: int
    timers: int
    signals: int
    upserts: int
    workflow_tasks: int
    payload_bytes: int

    def __add__(self, other: HistoryCost) -> HistoryCost:
        return HistoryCost(
            runs=self.runs + other.runs,
            events=self.events + other.events,
            activities=self.activities + other.activities,
            timers=self.timers + other.timers,
            signals=self.signals + other.signals,
            upserts=self.upserts + other.upserts,
            workflow_tasks=self.workflow_tasks + other.workflow_tasks,
            payload_bytes=self.payload_bytes + other.payload_bytes,
        )


def _payload_bytes(node: Any) -> int:
    """Sum of the decoded ``data`` of every payload (an object with ``metadata``)."""
    if isinstance(node, list):
        return sum(_payload_bytes(item) for item in node)
    if not isinstance(node, dict):
        return 0
    if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
        return len(base64.b64decode(node.get("data", "")))
    return sum(_payload_bytes(value) for value in node.values())


def cost_of(history: dict[str, Any]) -> HistoryCost:
    events: list[dict[str, Any]] = history["events"]
    kinds = Counter(str(event["eventType"]) for event in events)
    return HistoryCost(
        runs=1,
        events=len(events),
        payload_bytes=_payload_bytes(events),
        **{name: kinds[kind] for name, kind in _COUNTED.items()},
    )


def recorded_costs(folder: Path = HISTORIES) -> dict[str, HistoryCost]:
    """Cost per journey path, runs of one journey added together."""
    costs: dict[str, HistoryCost] = {}
    for file in sorted(folder.glob("*.json")):
        path = file.name.removesuffix(".json").split(".run")[0]
        cost = cost_of(json.loads(file.read_text(encoding="utf-8")))
        costs[path] = costs[path] + cost if path in costs else cost
    return costs


async def workflow_cost(client: Client, workflow_id: str) -> HistoryCost:
    """The same figures for a workflow on the server (e.g. one baseline run)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    parsed: dict[str, Any] = json.loads(history.to_json())
    return cost_of(parsed)
