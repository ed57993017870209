"""Scenario 4: Twilio answers 500 and 429 (with Retry-After) in bursts.

During a burst every Messages API request gets the error, in Twilio's own error
shape. The sender classifies both as transient; after a 429 the activity's next
attempt waits for the Retry-After the fake sent. Every SMS must still go out once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engine.devstack.twilio_fake import TwilioFake
from tools.chaos.config import ChaosConfig
from tools.chaos.harness import ChaosRun, until
from tools.chaos.scenario import ScenarioResult, run_scenario

NAME = "twilio_faults"


async def inject(run: ChaosRun) -> int:
    config, twilio = run.config, run.twilio
    # SMS go out after shipped and delivered: wait for the first request.
    await until(lambda: bool(twilio.requests), config.settle_seconds)
    refused_total = 0
    for n in range(config.twilio_bursts):
        if n % 2 == 0:
            twilio.fail_all(500)
            what = "500 Internal Server Error"
        else:
            twilio.fail_all(429, retry_after=config.twilio_retry_after_seconds)
            what = f"429 Too Many Requests, Retry-After: {config.twilio_retry_after_seconds}"
        before = len(twilio.requests)
        await asyncio.sleep(config.twilio_burst_seconds)
        # On a slow machine a burst may pass between two sends: hold it until it
        # refused at least one request (a while at most).
        await until(_more_requests(twilio, before), config.twilio_burst_seconds * 4)
        twilio.recover()
        refused = len(twilio.requests) - before
        refused_total += refused
        run.note(
            f"Twilio burst {n + 1}: {what} for {config.twilio_burst_seconds:g} s "
            f"({refused} requests refused)"
        )
        await asyncio.sleep(config.twilio_gap_seconds)
    run.note(f"Twilio healthy again; {refused_total} requests refused in all")
    return refused_total


def _more_requests(twilio: TwilioFake, than: int) -> Callable[[], bool]:
    return lambda: len(twilio.requests) > than


async def run(config: ChaosConfig) -> ScenarioResult:
    return await run_scenario(
        NAME,
        f"Twilio answering 500 / 429 in {config.twilio_bursts} bursts of "
        f"{config.twilio_burst_seconds:g} s",
        config,
        inject,
    )
