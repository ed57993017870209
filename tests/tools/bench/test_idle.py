"""The idle-capacity bench end to end at a tiny scale: its own dev server, the worker
as a process, the API, a wake storm of journeys due at one instant, and the report.
Counts only: how fast anything went is the bench's output, never a test's verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowHandle

from tools.bench.idle import (
    STORM_PLAN_FILE,
    STORM_STEP,
    idle_capacity,
    memory_marks,
    storm_due,
    storm_plan,
)
from tools.bench.stack import bench_stack
from tools.bench.workloads import Throughput
from workflows import search_attributes as sa
from workflows.contracts import SEND_MESSAGE_ACTIVITY
from workflows.ids import journey_id_for


def test_memory_is_read_at_the_standard_marks_below_the_count_then_at_the_end() -> None:
    assert memory_marks(20_000) == [5_000, 20_000]
    assert memory_marks(100_000) == [5_000, 20_000, 50_000, 100_000]
    assert memory_marks(50) == [25, 50]
    assert memory_marks(1) == [1]


def test_the_storm_is_due_at_the_first_whole_minute_after_the_time_needed() -> None:
    now = datetime(2026, 3, 29, 0, 59, 10, tzinfo=UTC)
    assert storm_due(now, 30) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert storm_due(now, 50) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert storm_due(now, 50.001) == datetime(2026, 3, 29, 1, 1, tzinfo=UTC)
    on_the_minute = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert storm_due(on_the_minute, 60) == datetime(2026, 3, 29, 1, 1, tzinfo=UTC)


def test_the_storm_plan_is_the_file_with_its_step_moved_to_the_local_due_time() -> None:
    # 01:00 UTC on the day Berlin springs forward is 03:00 local (CEST).
    due = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    pinned = storm_plan(due, "Europe/Berlin")
    assert pinned.plan.id == "wake_storm"
    assert pinned.source == STORM_PLAN_FILE.name
    assert pinned.plan.step(STORM_STEP).at == "03:00"
    assert storm_plan(due, "UTC").plan.step(STORM_STEP).at == "01:00"
    # Another time is another plan content, so another pinned hash.
    assert pinned.content_hash != storm_plan(due, "UTC").content_hash
    assert due.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "03:00"


async def _sends_of(journey: WorkflowHandle[Any, Any]) -> list[str]:
    history = await journey.fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


@pytest.mark.long
@pytest.mark.timeout(900)
async def test_the_idle_bench_runs_end_to_end_and_every_storm_email_arrives() -> None:
    async with bench_stack() as stack:
        for bad, field in (
            ({"journeys": 0, "storm": 20}, "journeys"),
            ({"journeys": 10, "storm": 1}, "storm"),
            ({"journeys": 10, "storm": 5, "in_flight": 0}, "in_flight"),
            ({"journeys": 10, "storm": 5, "marks": [5, 3, 10]}, "marks"),
        ):
            with pytest.raises(ValueError, match=f"^{field}: "):
                await idle_capacity(stack, **bad)

        report = await idle_capacity(stack, journeys=50, storm=20, in_flight=10)

        storm = report.storm
        some_storm_journey = stack.client.get_workflow_handle(
            journey_id_for(f"{report.order_prefix}-S0")
        )
        # The worker process is gone: what the journey did is read from its history.
        described = await some_storm_journey.describe()
        sends = await _sends_of(some_storm_journey)
        # The pilot that timed the storm sleeps on: its step is half a day away.
        pilot_journey = stack.client.get_workflow_handle(
            journey_id_for(f"{report.order_prefix}-P0")
        )
        pilot_described = await pilot_journey.describe()
        pilot_sends = await _sends_of(pilot_journey)

    assert report.journeys == 50
    assert report.confirmed == 50  # every idle journey confirmed, then went to sleep
    assert [point.journeys for point in report.memory] == [0, 25, 50]
    assert all(p.worker_rss_mb > 0 and p.server_rss_mb > 0 for p in report.memory)
    assert storm.count == 20
    assert storm.arrived == 20  # every storm email is in the sink ...
    assert storm.distinct == 20  # ... once per journey
    assert described.typed_search_attributes[sa.JOURNEY_PLAN] == "wake_storm@v1"
    assert sends == [SEND_MESSAGE_ACTIVITY]  # its one step, at the due instant
    assert pilot_described.typed_search_attributes[sa.JOURNEY_PLAN] == "wake_storm@v1"
    assert pilot_sends == []

    baseline = Throughput(count=100, concurrency_limit=10, seconds=10.0)
    figures = report.as_json(baseline)
    assert figures["journeys"] == 50
    assert figures["wake_storm"]["arrived"] == 20
    assert [p["journeys"] for p in figures["memory"]] == [0, 25, 50]
    table = "\n".join(report.table(baseline))
    assert "wake storm: 20 journeys due at" in table
    assert "worker RSS MB, 50 journeys" in table


@pytest.mark.long
@pytest.mark.timeout(600)
async def test_journeys_started_asleep_send_nothing_and_are_counted_asleep() -> None:
    async with bench_stack() as stack:
        report = await idle_capacity(
            stack, journeys=20, storm=2, in_flight=10, asleep_from_start=True
        )
        sleeper = stack.client.get_workflow_handle(journey_id_for(f"{report.order_prefix}-19"))
        described = await sleeper.describe()
        sends = await _sends_of(sleeper)

    assert report.asleep_from_start
    assert report.confirmed == 0  # nothing is sent while they sleep
    assert [point.journeys for point in report.memory] == [0, 10, 20]
    assert described.typed_search_attributes[sa.JOURNEY_PLAN] == "bench_asleep@v1"
    assert sends == []
    assert report.storm.arrived == 2
    baseline = Throughput(count=100, concurrency_limit=10, seconds=10.0)
    assert report.as_json(baseline)["asleep_from_start"] is True
    table = "\n".join(report.table(baseline))
    assert "20 journeys started asleep (tools/bench/plans/asleep.yaml)" in table
    assert "StartJourney accepted/s" not in table
