"""Worker versioning with two builds of the journey worker on one dev server.

Journeys are pinned: one started on build 1 keeps running on build 1 after build 2
becomes current, while build 2 takes the new journeys; at continue-as-new a journey
moves forward and its next run runs on build 2. The server is told to suggest
continue-as-new past 20 history events, so the journey's own continue-as-new (the
one a long replenishment journey makes) happens after its first event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.api.history.v1 import WorkflowExecutionContinuedAsNewEventAttributes
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys.directory import JourneyDirectory
from engine.platform.codec.runtime import converter_for, customer_keys_for
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.orders import OrderEvent, Shipment
from workflows.vocabulary import EventType

DEPLOYMENT = "aftercare-test"
# A journey's first run sleeps after about 15 events; the shipped event takes it past 20.
SUGGEST_CONTINUE_AS_NEW_AT = 20


async def set_current(client: Client, build_id: str) -> None:
    """Make ``build_id`` current (as `temporal worker deployment set-current-version`
    does), once the server has seen its workers poll."""

    async def attempt() -> bool:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=DEPLOYMENT,
                    build_id=build_id,
                    identity="tests",
                )
            )
        except RPCError:
            return False
        return True

    await eventually(attempt, bool, seconds=30.0, interval=0.5)


async def pinned_build(client: Client, workflow_id: str) -> tuple[str, int, str]:
    """The current run's build, versioning behaviour and run id."""
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    info = described.workflow_execution_info
    versioning = info.versioning_info
    return versioning.deployment_version.build_id, versioning.behavior, info.execution.run_id


async def builds_that_ran(client: Client, workflow_id: str, run_id: str) -> list[str]:
    """The build of every workflow task a run's history records as completed."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return [
        event.workflow_task_completed_event_attributes.deployment_version.build_id
        for event in history.events
        if event.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]


async def continued_as_new(
    client: Client, workflow_id: str, run_id: str
) -> WorkflowExecutionContinuedAsNewEventAttributes | None:
    """How the run continued as new, or None while it has not."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    last = history.events[-1]
    if last.event_type != HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return None
    return last.workflow_execution_continued_as_new_event_attributes


@asynccontextmanager
async def build(client: Client, settings: Settings, build_id: str) -> AsyncIterator[None]:
    versioned = settings.model_copy(update={"deployment_name": DEPLOYMENT, "build_id": build_id})
    async with journey_worker(client, versioned) as group, group:
        yield


async def test_pinned_journeys_stay_on_their_build_and_move_at_continue_as_new(
    mail_sink: MailSink, tmp_path: Path
) -> None:
    server = TemporalDevServer(
        port=free_port(),
        ui_port=None,
        extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_AT}",
        ],
    )
    await server.start()
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=server.address,
            task_queue=f"versioned-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=mail_sink.port,
        )
    )
    keys = customer_keys_for(settings)
    try:
        client = await Client.connect(server.address, data_converter=converter_for(settings, keys))
        directory = JourneyDirectory(client, settings.task_queue)
        async with build(client, settings, "build-1"):
            await set_current(client, "build-1")
            old = domain_order()
            old_id = (await directory.start(old)).journey_id
            await mail_sink_has(mail_sink, old_id, 1)
            async with build(client, settings, "build-2"):
                await set_current(client, "build-2")
                new_id = (await directory.start(domain_order())).journey_id
                await mail_sink_has(mail_sink, new_id, 1)

                assert (await pinned_build(client, new_id))[:2] == (
                    "build-2",
                    VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
                )
                old_build, behaviour, first_run = await pinned_build(client, old_id)
                assert (old_build, behaviour) == (
                    "build-1",
                    VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
                )

                # An event for the old journey: handled on build 1, where it is pinned;
                # the journey then continues as new and its next run is on build 2.
                await directory.record_event(
                    old.order_id,
                    OrderEvent(
                        event_id="evt-shipped",
                        type=EventType.SHIPPED,
                        occurred_at=datetime.now(UTC),
                        shipment=Shipment(carrier="DHL", tracking_number="JD0001"),
                    ),
                )
                await mail_sink_has(mail_sink, old_id, 2)
                moved = await eventually(
                    lambda: continued_as_new(client, old_id, first_run),
                    lambda found: found is not None,
                )
                assert moved is not None
                assert set(await builds_that_ran(client, old_id, first_run)) == {"build-1"}
                # The next run's workflow tasks: all on build 2, from its first on.
                next_run = moved.new_execution_run_id
                ran = await eventually(
                    lambda: builds_that_ran(client, old_id, next_run), lambda found: bool(found)
                )
                assert set(ran) == {"build-2"}
                assert (await pinned_build(client, old_id))[0] == "build-2"
                assert set(await builds_that_ran(client, new_id, "")) == {"build-2"}
                for journey_id in (old_id, new_id):
                    await client.get_workflow_handle(journey_id).terminate(reason="test over")
    finally:
        await keys.aclose()
        await server.stop()


async def mail_sink_has(sink: MailSink, journey_id: str, count: int) -> None:
    await eventually(lambda: _mails(sink, journey_id), lambda found: found >= count, seconds=60.0)


async def _mails(sink: MailSink, journey_id: str) -> int:
    return sum(
        1 for mail in sink.handler.received if mail.message["X-Aftercare-Journey"] == journey_id
    )
