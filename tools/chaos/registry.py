"""Every chaos scenario, by name, in the order a full run goes through them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tools.chaos import (
    event_storm,
    postgres_kill,
    server_restart,
    smtp_outage,
    twilio_faults,
    worker_kill,
)
from tools.chaos.config import ChaosConfig
from tools.chaos.scenario import ScenarioResult

Scenario = Callable[[ChaosConfig], Awaitable[ScenarioResult]]

SCENARIOS: dict[str, Scenario] = {
    worker_kill.NAME: worker_kill.run,
    server_restart.NAME: server_restart.run,
    smtp_outage.NAME: smtp_outage.run,
    twilio_faults.NAME: twilio_faults.run,
    postgres_kill.NAME: postgres_kill.run,
    event_storm.NAME: event_storm.run,
}
