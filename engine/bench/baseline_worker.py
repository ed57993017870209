"""The baseline's worker as a process of its own, as the journey worker runs
(``aftercare worker``): both sides of a comparison get the same topology, a worker
process beside the process that drives the load.

    python -m engine.bench.baseline_worker QUEUE   (settings from AFTERCARE_* variables)
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from temporalio.worker import Worker

from engine.bench.baseline import BaselineWorkflow, baseline_echo
from engine.bench.stack import child_process
from engine.codec.runtime import converter_for
from engine.sandbox import write_bytecode_for
from engine.settings import Settings
from engine.temporal import connect


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
        client, task_queue=queue, workflows=[BaselineWorkflow], activities=[baseline_echo]
    ):
        await stop.wait()


@asynccontextmanager
async def baseline_worker_process(
    settings: Settings, queue: str, log_file: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    argv = [sys.executable, "-m", "engine.bench.baseline_worker", queue]
    async with child_process(settings, argv, log_file) as process:
        yield process


if __name__ == "__main__":
    asyncio.run(serve(Settings(), sys.argv[1]))
