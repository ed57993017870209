"""Scenario 3: the mail server refuses connections (listener closed, open sessions
dropped), then answers 4xx (first to RCPT, then at the end of DATA, after the
content went out), then is healthy again.

Every email is transactional or has a day's budget here, so each must still arrive,
once: a 4xx after DATA means the server did not take the message, and the retry
sends it with the same Message-ID.
"""

from __future__ import annotations

import asyncio

from tools.chaos.config import ChaosConfig
from tools.chaos.harness import ChaosRun, until
from tools.chaos.scenario import ScenarioResult, run_scenario

NAME = "smtp_outage"
RCPT_DEFERRAL = "451 4.3.0 Mail server busy, try again later"
DATA_DEFERRAL = "452 4.3.1 Insufficient system storage, try again later"


async def inject(run: ChaosRun) -> int:
    sink, handler = run.stack.sink, run.stack.sink.handler
    config = run.config
    await run.traffic()
    before = len(handler.received)
    await sink.refuse_connections()
    run.note(f"SMTP: connections refused on port {sink.port}, open sessions dropped")
    await asyncio.sleep(config.smtp_refuse_seconds)
    await sink.accept_connections()
    handler.deferral = RCPT_DEFERRAL
    run.note(
        f"SMTP: listening again after {config.smtp_refuse_seconds:g} s "
        f"({len(handler.received) - before} emails arrived meanwhile); "
        f"every RCPT answered '{RCPT_DEFERRAL}'"
    )
    await asyncio.sleep(config.smtp_defer_seconds / 2)
    handler.deferral = None
    handler.data_deferral = DATA_DEFERRAL
    run.note(f"SMTP: every message answered '{DATA_DEFERRAL}' after its DATA")
    await asyncio.sleep(config.smtp_defer_seconds / 2)
    # On a slow machine the window may pass between two sends: hold the 4xx answers
    # until at least one was given (a while at most).
    await until(lambda: handler.deferred > 0, config.smtp_defer_seconds * 4)
    handler.data_deferral = None
    run.note(f"SMTP healthy again; {handler.deferred} 4xx answers given")
    # The outage counts once: refused connections are refused by the OS, uncounted.
    return 1 + handler.deferred


async def run(config: ChaosConfig) -> ScenarioResult:
    return await run_scenario(
        NAME,
        f"SMTP refusing connections for {config.smtp_refuse_seconds:g} s, then answering "
        f"4xx for {config.smtp_defer_seconds:g} s, then healthy",
        config,
        inject,
    )
