"""The worker writes the workflow package's bytecode at start, so the sandbox's
per-instance imports read a .pyc instead of compiling the source each time; the
sandbox can be turned off, and what runs without it still replays in it."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from engine.database.migrate import upgrade_database
from engine.devstack.mail_sink import MailSink
from engine.journeys import initial_search_attributes
from engine.sandbox import workflow_runner, write_bytecode_beside, write_bytecode_for
from engine.settings import Settings
from engine.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.ids import journey_id_for
from workflows.model import JourneyInput, StepOutcome
from workflows.order_journey import OrderJourney


def test_bytecode_is_written_beside_the_source_even_when_python_would_not(
    tmp_path: Path,
) -> None:
    source = tmp_path / "some_workflow.py"
    source.write_text("VALUE = 1\n")
    cached = Path(importlib.util.cache_from_source(str(source)))
    assert not cached.exists()

    write_bytecode_beside(str(source))

    assert cached.is_file()
    assert cached.stat().st_size > 0


def test_the_journey_workflow_module_gets_its_bytecode() -> None:
    write_bytecode_for(OrderJourney)
    module = Path(__file__).resolve().parents[2] / "workflows" / "order_journey.py"
    assert Path(importlib.util.cache_from_source(str(module))).is_file()


def test_the_sandbox_is_on_unless_the_settings_turn_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(workflow_runner(Settings(_env_file=None)), SandboxedWorkflowRunner)
    monkeypatch.setenv("AFTERCARE_WORKFLOW_SANDBOX", "false")
    off = Settings(_env_file=None)
    assert off.workflow_sandbox is False
    assert isinstance(workflow_runner(off), UnsandboxedWorkflowRunner)


async def test_a_journey_run_without_the_sandbox_replays_in_it(
    temporal_client: Client, mail_sink: MailSink, tmp_path: Path
) -> None:
    """Same journey either way: what the unsandboxed worker recorded replays in the
    sandbox, which is how CI keeps checking determinism when production runs
    without it."""
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path,
        temporal_address="unused",  # the worker gets temporal_client
        task_queue=f"unsandboxed-{uuid.uuid4().hex[:8]}",
        database_url=database,
        smtp_port=mail_sink.port,
        workflow_sandbox=False,
    )
    order = domain_order()
    journey_id = journey_id_for(order.order_id)
    async with journey_worker(temporal_client, settings) as group, group:
        handle = await temporal_client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order),
            id=journey_id,
            task_queue=settings.task_queue,
            search_attributes=initial_search_attributes(order),
        )
        state = await eventually(
            lambda: handle.query(OrderJourney.state),
            lambda s: "order_confirmation" in s.steps,
        )
        assert state.steps["order_confirmation"].outcome == StepOutcome.SENT
        await handle.cancel()
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[OrderJourney],
        data_converter=temporal_client.data_converter,
        workflow_runner=SandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
    confirmations = [
        mail
        for mail in mail_sink.handler.received
        if mail.message["X-Aftercare-Journey"] == journey_id
    ]
    assert len(confirmations) == 1
