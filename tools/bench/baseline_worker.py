"""The baseline's worker as a process of its own, as the journey worker runs
(``aftercare worker``): both sides of a comparison get the same topology, a worker
process beside the process that drives the load.

    python -m tools.bench.baseline_worker QUEUE   (settings from AFTERCARE_* variables)
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from temporalio.worker import Worker

from engine.platform.codec.runtime import converter_for
from engine.platform.settings import Settings
from engine.platform.temporal.build_id import worker_build_id
from engine.platform.temporal.connection import connect
from engine.platform.temporal.sandbox import workflow_runner, write_bytecode_for
from engine.processes.worker import EXTERNAL_STORAGE_CONCURRENCY
from tools.bench.baseline import BaselineWorkflow, baseline_echo
from tools.bench.stack import Stack, child_processes, wait_for_pollers


async def serve(settings: Settings, queue: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The master keyring only: no customer key lookups, which bare Temporal lacks.
    client = await connect(
        settings, wait=timedelta(seconds=30), data_converter=converter_for(settings)
    )
    # Bare Temporal as deployed: with bytecode on disk, as the journey worker has.
    write_bytecode_for(BaselineWorkflow)
    async with Worker(
        client,
        task_queue=queue,
        # The journey worker's too: neither side spends its start hashing every module.
        build_id=worker_build_id(),
        workflows=[BaselineWorkflow],
        activities=[baseline_echo],
        # The journey worker's choice: both sides run with or both without it.
        workflow_runner=workflow_runner(settings),
        max_workflow_task_external_storage_concurrency=EXTERNAL_STORAGE_CONCURRENCY,
    ):
        await stop.wait()


@dataclass(frozen=True)
class BaselineWorker:
    queue: str  # the task queue its processes poll
    pids: list[int]


@asynccontextmanager
async def baseline_worker(stack: Stack, processes: int = 1) -> AsyncIterator[BaselineWorker]:
    """The baseline's worker as ``processes`` child processes polling one fresh task
    queue of ``stack`` (as the journey side scales: more identical workers), once
    every one of them polls it."""
    queue = f"baseline-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "tools.bench.baseline_worker", queue]
    logs = [stack.state_dir / f"baseline-worker-{n}.log" for n in range(processes)]
    async with child_processes(stack.settings, argv, logs) as started:
        await wait_for_pollers(stack.baseline_client, queue, started)
        yield BaselineWorker(queue, [process.pid for process in started])


if __name__ == "__main__":
    asyncio.run(serve(Settings(), sys.argv[1]))
