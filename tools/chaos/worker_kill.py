"""Scenario 1: the worker process is SIGKILLed every few seconds and started again.

A kill lands wherever the worker happens to be: in a workflow task, between a
send's ledger claim and the SMTP exchange, in the middle of it, or after the
provider accepted the message. Temporal hands the lost workflow tasks to the next
worker and retries the lost activities once their attempt times out; the ledger
decides whether a retried send still has to go out.
"""

from __future__ import annotations

import asyncio
import random

from tools.chaos.config import ChaosConfig
from tools.chaos.harness import ChaosRun
from tools.chaos.scenario import ScenarioResult, run_scenario

NAME = "worker_kill"


async def inject(run: ChaosRun) -> int:
    config = run.config
    low, high = config.kill_after_seconds
    await run.traffic()
    for _ in range(config.worker_kills):
        up_for = random.uniform(low, high)
        await asyncio.sleep(up_for)
        pid = await run.worker.kill()
        run.note(f"SIGKILL worker pid {pid} after {up_for:.1f} s up; starting a new one")
        await run.worker.start()
    run.note(f"{run.worker.kills} kills; the last worker keeps running")
    return run.worker.kills


async def run(config: ChaosConfig) -> ScenarioResult:
    low, high = config.kill_after_seconds
    return await run_scenario(
        NAME,
        f"the worker SIGKILLed {config.worker_kills} times, each after {low:g}-{high:g} s up, "
        "and restarted",
        config,
        inject,
    )
