"""Scenario 2: the Temporal dev server is stopped and started again on its persistent
database (SQLite file, the pragmas of ``aftercare run``), while journeys are mid-way.

Stops alternate between a clean shutdown (SIGTERM) and a crash (SIGKILL). Meanwhile
the worker's polls fail and the API answers UNAVAILABLE, which the order system
retries; afterwards every timer, signal and pending send must still happen once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from tools.chaos.config import ChaosConfig
from tools.chaos.harness import ChaosRun
from tools.chaos.scenario import ScenarioResult, run_scenario

NAME = "server_restart"
# Journeys make progress between stops.
_UP_SECONDS = 3.0


async def inject(run: ChaosRun) -> int:
    server = run.stack.server
    await run.traffic()
    for n in range(run.config.server_restarts):
        await asyncio.sleep(_UP_SECONDS)
        crash = n % 2 == 1
        pid = server.pid
        if crash and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await server.stop()
        how = "SIGKILL (crash)" if crash else "SIGTERM (clean stop)"
        run.note(f"Temporal dev server pid {pid} stopped by {how}")
        await asyncio.sleep(run.config.server_down_seconds)
        await server.start()
        run.note(f"Temporal dev server started again on {server.db_file} (pid {server.pid})")
    return run.config.server_restarts


async def run(config: ChaosConfig) -> ScenarioResult:
    return await run_scenario(
        NAME,
        f"the Temporal dev server stopped {config.server_restarts} time(s) for "
        f"{config.server_down_seconds:g} s and restarted on its database",
        config,
        inject,
    )
