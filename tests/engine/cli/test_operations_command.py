"""``aftercare ops`` against the real API, configured as ops configure it:
pause, list, bulk-cancel with its count and progress, resume; bad input names the
field, a key without journeys:admin is refused."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import pytest
from aftercare.v1 import operations_pb2 as pb
from temporalio.client import Client, WorkflowExecutionStatus
from typer.testing import CliRunner

from engine.cli.app import app
from engine.devstack.mail_sink import MailSink
from tests.support.operations import OperationsStack, operations_stack
from tests.support.orders import domain_order
from tests.support.waiting import eventually

runner = CliRunner()
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


@pytest.fixture(scope="module")
async def ops(
    temporal_client: Client, mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OperationsStack]:
    async with operations_stack(
        temporal_client, tmp_path_factory.mktemp("ops-cli"), mail_sink, with_worker=True
    ) as stack:
        yield stack


async def aftercare(ops: OperationsStack, *args: str, key: str | None = None) -> tuple[int, str]:
    """Run ``aftercare ops ...`` as ops would, configured by the environment only. In
    a thread (the command runs its own event loop); CliRunner spares the start of a
    new interpreter per command."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("AFTERCARE_")
    }
    env.update(
        AFTERCARE_GRPC_PORT=str(ops.settings.grpc_port),
        AFTERCARE_STATE_DIR=str(ops.settings.state_dir),
        AFTERCARE_API_KEY=key or ops.api_key,
    )
    result = await asyncio.to_thread(runner.invoke, app, ["ops", *args], env=env)
    # The API and the worker serving the command run in this process: their log lines
    # are captured too, and a record logged after an earlier command's streams closed
    # leaves a "--- Logging error ---" report on stderr. The command's answer is its
    # stdout; its stderr matters (and is kept) when it failed.
    said = result.stdout if result.exit_code == 0 else result.output
    printed = [line for line in said.splitlines() if not LOG_LINE.match(line)]
    return result.exit_code, "\n".join(printed)


async def test_pause_list_and_resume(ops: OperationsStack) -> None:
    code, out = await aftercare(ops, "pause", "--step", "cross_sell", "--reason", "bad price")
    assert code == 0, out
    assert "step=cross_sell" in out
    pause_id = out.split("aftercare ops resume ")[1].split()[0]
    assert pause_id.startswith("pause-")
    assert f"by key {ops.api_key_id}" in out

    code, out = await aftercare(ops, "pauses")
    assert code == 0, out
    assert pause_id in out
    assert "reason: bad price" in out

    code, out = await aftercare(ops, "resume", pause_id)
    assert code == 0, out
    assert f"resumed: {pause_id}" in out
    assert "told by job aftercare-sending_resumed-" in out

    code, out = await aftercare(ops, "pauses")
    assert code == 0, out
    assert pause_id not in out


async def test_bulk_cancel_prints_the_count_then_the_progress(ops: OperationsStack) -> None:
    order = domain_order()
    started = await ops.directory.start(order)
    customer = order.customer.id
    await eventually(
        lambda: ops.client.count_journeys(pb.JourneyFilter(customer_id=customer)),
        lambda answer: answer.count == 1,
    )

    code, out = await aftercare(ops, "bulk", "cancel", "--customer", customer, "--dry-run")
    assert code == 0, out
    assert out.startswith("1 running journey(s) match: ")
    assert "started job" not in out

    code, out = await aftercare(
        ops, "bulk", "cancel", "--customer", customer, "--reason", "fraud", "--yes"
    )
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("1 running journey(s) match: ")
    assert lines[1].startswith("started job aftercare-cancel-")
    job_id = lines[1].split()[2]
    # The command's progress lines name the job; the API and the worker run in this
    # process, and what they log (to a stream CliRunner swaps) may be captured too.
    progress = [line for line in lines if line.startswith(f"{job_id}: ")]
    assert progress[-1] == f"{job_id}: completed, 1/1 done, 0 failed"
    # The job is done once every journey was asked to stop; each then stops in its
    # next workflow task (reporting its end first), a moment later on a busy machine.
    handle = ops.temporal.get_workflow_handle(started.journey_id)
    described = await eventually(
        handle.describe, lambda d: d.status != WorkflowExecutionStatus.RUNNING
    )
    assert described.status == WorkflowExecutionStatus.CANCELED

    code, out = await aftercare(ops, "job", job_id, "--no-follow")
    assert code == 0, out
    assert out.strip() == f"{job_id}: completed, 1/1 done, 0 failed"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["pause", "--step", "crossell", "--reason", "x"], "scope.value: "),
        (["pause", "--step", "cross_sell", "--reason", " "], "reason: is required"),
        (["bulk", "pause", "--plan", "Default", "--dry-run"], "filter.plan: "),
        (["bulk", "cancel", "--plan", "default"], "reason: is required"),
        (["bulk", "pause", "--dry-run"], "filter: must select something"),
    ],
)
async def test_bad_input_names_the_field(
    ops: OperationsStack, args: list[str], expected: str
) -> None:
    code, out = await aftercare(ops, *args)
    assert code == 2, out
    assert expected in out


async def test_a_key_without_journeys_admin_is_refused(ops: OperationsStack) -> None:
    code, out = await aftercare(ops, "pauses", key=ops.unprivileged_key)
    assert code == 1
    assert "PERMISSION_DENIED" in out
    assert "journeys:admin" in out
