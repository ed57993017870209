"""What every scenario shares: journeys driven while a fault is injected, then the
verification, and the result a scenario hands to the runner."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from tools.chaos.config import ChaosConfig
from tools.chaos.driving import OrderSystem, drive_journeys, order_ids
from tools.chaos.harness import ChaosRun, chaos_run
from tools.chaos.verification import StateCheck, Verification, verify

# Does its worst to the run's stack; returns how many faults it injected (kills,
# refused requests, terminated connections...), so a run can show they happened.
Injection = Callable[[ChaosRun], Awaitable[int]]
# Plays the order system for the run's journeys; returns how many got all their events.
Driver = Callable[[ChaosRun, OrderSystem, list[str]], Coroutine[Any, Any, int]]
_WATCH_INTERVAL_SECONDS = 0.5


@dataclass
class ScenarioResult:
    name: str
    description: str
    verification: Verification
    faults: int = 0
    injected: list[tuple[float, str]] = field(default_factory=list)
    # What else was seen: API calls repeated, sends retried, ...
    observed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verification.passed


async def watch_worker(run: ChaosRun, restarts: list[str]) -> None:
    """Restart the worker if it exits by itself (not killed by the scenario): the run
    goes on, and the exit is reported as a failure of the scenario."""
    while True:
        await asyncio.sleep(_WATCH_INTERVAL_SECONDS)
        code = await run.worker.restart_if_crashed()
        if code is not None:
            run.note(f"the worker had exited by itself (code {code}); started a new one")
            restarts.append(f"worker exited by itself with code {code} at {run.elapsed():.1f}s")


async def run_scenario(
    name: str,
    description: str,
    config: ChaosConfig,
    inject: Injection,
    *,
    database_url: str | None = None,
    check_state: StateCheck | None = None,
    drive: Driver | None = None,
) -> ScenarioResult:
    """Drive ``config.journeys`` journeys (by default: start, then shipped,
    out_for_delivery and delivered, ``event_pace_seconds`` apart) while ``inject``
    does its worst, then verify."""
    began = time.monotonic()
    async with chaos_run(name, config, database_url=database_url) as run:
        print(f"== {name}: {description}", flush=True)
        orders = order_ids(run.journey_prefix, config.journeys)
        system = OrderSystem(run.api, config.in_flight, config.settle_seconds)
        crashes: list[str] = []
        watcher = asyncio.create_task(watch_worker(run, crashes))
        driving = asyncio.create_task(
            drive(run, system, orders)
            if drive is not None
            else drive_journeys(system, orders, config.event_pace_seconds)
        )
        print(f"  stack ready after {time.monotonic() - began:.1f} s", flush=True)
        try:
            faults = await inject(run)
            driven = await driving
        finally:
            driving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driving
        run.note(f"faults over; {driven} of {len(orders)} journeys got all their events")
        verification, _ = await verify(run, orders, check_state=check_state)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        for crash in crashes:
            verification.problem(crash)
        observed = [f"order system: {system.stats.summary()}", *verification.observed]
        return ScenarioResult(
            name=name,
            description=description,
            verification=verification,
            faults=faults,
            injected=list(run.injected),
            observed=observed,
            seconds=time.monotonic() - began,
        )
