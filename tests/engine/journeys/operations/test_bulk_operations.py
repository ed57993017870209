"""Bulk operations on the real dev server, through the API: a dry-run count first,
then a Temporal batch operation whose progress reaches completed, acting on exactly
the journeys the filter selects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aftercare.v1 import operations_pb2 as pb
from temporalio.client import Client, WorkflowExecutionStatus

from engine.devstack.mail_sink import MailSink
from tests.support.operations import (
    OperationsStack,
    new_plan_id,
    operations_stack,
    write_plan,
)
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.order_journey import OrderJourney
from workflows.orders import LineItem
from workflows.vocabulary import Stage


@dataclass
class Plans:
    folder: Path
    recalled: str  # the plan whose journeys a test acts on
    other: str


def item(category: str) -> LineItem:
    return LineItem(sku="SKU-1", name="Thing", category=category, quantity=1, unit_price_minor=900)


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Plans:
    folder = tmp_path_factory.mktemp("bulk-plans")
    found = Plans(folder, new_plan_id("recalled"), new_plan_id("other"))
    write_plan(folder, found.recalled, categories=("recalled",))
    write_plan(folder, found.other, categories=("other",))
    return found


@pytest.fixture(scope="module")
async def ops(
    temporal_client: Client,
    mail_sink: MailSink,
    plans: Plans,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[OperationsStack]:
    async with operations_stack(
        temporal_client,
        tmp_path_factory.mktemp("bulk"),
        mail_sink,
        plans_dir=plans.folder,
        with_worker=True,
    ) as stack:
        yield stack


async def start_journeys(ops: OperationsStack, category: str, count: int) -> list[str]:
    started = await asyncio.gather(
        *(ops.directory.start(domain_order(items=[item(category)])) for _ in range(count))
    )
    return [journey.journey_id for journey in started]


async def counted(ops: OperationsStack, journeys: pb.JourneyFilter, expected: int) -> None:
    """Wait until visibility shows ``expected`` journeys (the plan is recorded by
    the journey's first workflow task)."""
    await eventually(
        lambda: ops.client.count_journeys(journeys), lambda answer: answer.count == expected
    )


async def finished(ops: OperationsStack, job_id: str) -> pb.BulkOperation:
    return await eventually(
        lambda: ops.client.get_bulk_operation(job_id),
        lambda operation: operation.state != pb.BULK_OPERATION_STATE_RUNNING,
        seconds=60,
    )


async def test_bulk_cancel_by_plan_cancels_only_that_plans_journeys(
    ops: OperationsStack, plans: Plans
) -> None:
    recalled = await start_journeys(ops, "recalled", 4)
    others = await start_journeys(ops, "other", 3)
    by_plan = pb.JourneyFilter(plan=plans.recalled)
    await counted(ops, by_plan, 4)
    await counted(ops, pb.JourneyFilter(plan=f"{plans.other}@v1"), 3)

    dry = await ops.client.start_bulk_operation(pb.BULK_ACTION_CANCEL, by_plan, dry_run=True)
    assert dry.count == 4
    assert dry.job_id == ""
    assert f'JourneyPlan STARTS_WITH "{plans.recalled}@v"' in dry.query
    assert (await ops.client.count_journeys(by_plan)).count == 4  # nothing was done

    started = await ops.client.start_bulk_operation(
        pb.BULK_ACTION_CANCEL, by_plan, reason="recalled product"
    )
    assert started.count == 4
    assert started.job_id.startswith("aftercare-cancel-")
    done = await finished(ops, started.job_id)
    assert done.state == pb.BULK_OPERATION_STATE_COMPLETED
    assert (done.total, done.completed, done.failed) == (4, 4, 0)
    assert done.action == pb.BULK_ACTION_CANCEL
    assert done.reason == "recalled product"
    assert done.query == started.query
    assert done.HasField("closed_at")

    for journey_id in recalled:
        handle = ops.temporal.get_workflow_handle_for(OrderJourney.run, journey_id)
        await eventually(
            handle.describe,
            lambda described: described.status == WorkflowExecutionStatus.CANCELED,
        )
    for journey_id in others:
        described = await ops.temporal.get_workflow_handle(journey_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
    await counted(ops, by_plan, 0)
    await counted(ops, pb.JourneyFilter(plan=plans.other), 3)


async def test_bulk_pause_and_resume_mark_the_journeys_paused(
    ops: OperationsStack, plans: Plans
) -> None:
    (target,) = await start_journeys(ops, "other", 1)
    customer = (await ops.directory.get(target.removeprefix("order-"))).state.customer_id
    mine = pb.JourneyFilter(customer_id=customer)
    await counted(ops, mine, 1)

    paused = await ops.client.start_bulk_operation(
        pb.BULK_ACTION_PAUSE_ALL, mine, reason="customer complaint"
    )
    assert (await finished(ops, paused.job_id)).completed == 1
    await counted(ops, pb.JourneyFilter(customer_id=customer, paused=True), 1)
    state = (await ops.directory.get(target.removeprefix("order-"))).state
    assert state.stage == Stage.ORDERED
    # The journey's history says who paused it: the calling key, never its secret.
    history = await ops.temporal.get_workflow_handle(target).fetch_history()
    signals = [
        event.workflow_execution_signaled_event_attributes
        for event in history.events
        if event.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert [(s.signal_name, s.identity) for s in signals] == [
        ("pause_journey_all", f"aftercare-api key {ops.api_key_id}")
    ]

    resumed = await ops.client.start_bulk_operation(
        pb.BULK_ACTION_RESUME, pb.JourneyFilter(customer_id=customer, paused=True), reason="ok"
    )
    assert resumed.count == 1
    assert (await finished(ops, resumed.job_id)).completed == 1
    await counted(ops, pb.JourneyFilter(customer_id=customer, paused=False), 1)
