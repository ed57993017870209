"""The worker writes the workflow package's bytecode at start, so the sandbox's
per-instance imports read a .pyc instead of compiling the source each time; the
sandbox compiles the SDK's code strings once and still refuses what it refused; the
sandbox can be turned off, and what runs without it still replays in it."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import (
    Replayer,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, _runner

from engine.devstack.mail_sink import MailSink
from engine.journeys.directory import initial_search_attributes
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.platform.temporal.sandbox import (
    PrecompiledSandboxRunner,
    compiled_sandbox_code,
    workflow_runner,
    write_bytecode_beside,
    write_bytecode_for,
)
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from tests.support.wall_clock_workflow import ReadsTheWallClock
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.state import JourneyInput, StepOutcome


def sandbox_test_details(definition: workflow._Definition) -> WorkflowInstanceDetails:
    """What the SDK hands a runner for a new instance, with its own validation info."""
    converter = DataConverter.default
    return WorkflowInstanceDetails(
        payload_converter_factory=converter._new_payload_converter,
        failure_converter_class=converter.failure_converter_class,
        interceptor_classes=[],
        defn=definition,
        info=_runner._fake_info,
        randomness_seed=-1,
        extern_functions={},
        disable_eager_activity_execution=False,
        worker_level_failure_exception_types=[],
        patch_activation_callback=None,
        last_completion_result=Payloads(),
        last_failure=Failure(),
    )


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
    module = Path(__file__).resolve().parents[4] / "workflows" / "order_journey.py"
    assert Path(importlib.util.cache_from_source(str(module))).is_file()


def test_the_sandbox_is_on_unless_the_settings_turn_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(workflow_runner(Settings(_env_file=None)), PrecompiledSandboxRunner)
    assert isinstance(workflow_runner(Settings(_env_file=None)), SandboxedWorkflowRunner)
    monkeypatch.setenv("AFTERCARE_WORKFLOW_SANDBOX", "false")
    off = Settings(_env_file=None)
    assert off.workflow_sandbox is False
    assert isinstance(workflow_runner(off), UnsandboxedWorkflowRunner)


async def test_sandbox_instances_compile_the_sdks_code_strings_once() -> None:
    runner = PrecompiledSandboxRunner()
    definition = workflow._Definition.must_from_class(OrderJourney)
    compiled_sandbox_code.cache_clear()

    runner.prepare_workflow(definition)  # creates an instance: its two import blocks
    first = compiled_sandbox_code.cache_info()
    runner.prepare_workflow(definition)
    second = compiled_sandbox_code.cache_info()

    assert first.misses == 2
    assert second.misses == 2
    assert second.hits == first.hits + 2


async def test_serialization_contexts_are_the_stock_sandboxes_answers() -> None:
    definition = workflow._Definition.must_from_class(OrderJourney)
    details = sandbox_test_details(definition)
    ours = PrecompiledSandboxRunner().create_instance(details)
    stock = SandboxedWorkflowRunner().create_instance(details)
    compiled_before = compiled_sandbox_code.cache_info()

    assert ours.get_serialization_context(None) == stock.get_serialization_context(None)
    assert ours.get_serialization_context(None) is not None
    assert ours.get_external_store_context(None) == stock.get_external_store_context(None)
    # Asked directly: no code string run in the sandbox for it.
    assert compiled_sandbox_code.cache_info() == compiled_before


async def test_a_new_instance_imports_only_the_journey_module_afresh() -> None:
    # The journey's pure building blocks are passed through: loaded once outside
    # the sandbox and shared. `from workflows import search_attributes` inside the
    # passthrough block was not: importlib loads a submodule named in a from-list
    # without the sandbox's import hook, so it was imported again for every journey.
    definition = workflow._Definition.must_from_class(OrderJourney)
    instance = PrecompiledSandboxRunner().create_instance(sandbox_test_details(definition))
    assert isinstance(instance, _runner._Instance)

    ours = {
        name: module
        for name, module in instance.importer.new_modules.items()
        if name == "workflows" or name.startswith("workflows.")
    }
    fresh = {name for name, module in ours.items() if module is not sys.modules.get(name)}

    assert fresh == {"workflows", "workflows.order_journey"}
    assert "workflows.search_attributes" in ours
    assert "workflows.state" in ours


@pytest.mark.parametrize(
    ("runner", "answer"),
    [(PrecompiledSandboxRunner(), "refused"), (UnsandboxedWorkflowRunner(), "allowed")],
    ids=["precompiled-sandbox", "no-sandbox"],
)
async def test_the_precompiled_sandbox_still_refuses_the_wall_clock(
    temporal_client: Client, runner: WorkflowRunner, answer: str
) -> None:
    task_queue = f"wall-clock-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[ReadsTheWallClock],
        workflow_runner=runner,
    ):
        # Annotated: left to inference, mypy 2.4 went on to misjudge
        # get_workflow_handle_for(OrderJourney.run, ...) in four other test files.
        result: str = await temporal_client.execute_workflow(
            ReadsTheWallClock.run, id=task_queue, task_queue=task_queue
        )
    assert result == answer


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
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
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
