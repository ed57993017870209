"""The short chaos run inside ``make test``: every scenario of ``make chaos`` on its own
fresh stack (dev server, worker process, API, mail sink, Twilio fake), with a couple of
dozen journeys and fault windows of seconds. Each must end with every journey
completed and every due message sent exactly once: ledger, mail sink and Twilio fake
agree, nothing repeated, nothing missing.

Each scenario is a test of its own, on its own stack and ports: the test processes
(pytest-xdist) run two at a time, overlapping their waiting (for a killed send's
attempt to time out, for backoff after an outage). A module-wide fixture running
them all would run them all again in every test process that takes one of them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_available
from tools.chaos import postgres_kill
from tools.chaos.config import ChaosConfig
from tools.chaos.registry import SCENARIOS
from tools.chaos.report import render_result
from tools.chaos.scenario import ScenarioResult
from tools.chaos.verification import ALL_EVENTS, expected_messages

JOURNEYS = 20


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_every_due_message_goes_out_exactly_once(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if name == postgres_kill.NAME and not postgres_available():
        raise AssertionError("PostgreSQL is not reachable on 127.0.0.1:5432")
    config = replace(
        ChaosConfig.short(JOURNEYS),
        log_dir=tmp_path_factory.mktemp(f"chaos-{name}"),
        postgres_admin_dsn=POSTGRES_ADMIN_DSN,
    )
    result: ScenarioResult = await SCENARIOS[name](config)

    report = render_result(result)  # shown when an assertion fails
    assert result.faults > 0, report  # the faults happened
    verification = result.verification
    assert verification.problems == [], report
    owed = JOURNEYS * len(expected_messages(ALL_EVENTS))
    assert (verification.journeys, verification.completed) == (JOURNEYS, JOURNEYS), report
    assert (verification.expected, verification.sent) == (owed, owed), report
    assert verification.missing == 0, report
    # Nothing sent twice, except what the documented residual window explains: an
    # email whose sender was SIGKILLed around the moment the SMTP server took it,
    # before the ledger recorded it (only worker_kill kills a worker; texts have
    # delivery reports, and every other resend is a problem).
    assert verification.duplicates == verification.resent_after_kill, report
    if name != "worker_kill":
        assert verification.resent_after_kill == 0, report
    # The sink and the fake hold each due message, plus exactly those resends.
    assert verification.received == owed + verification.resent_after_kill, report
