"""`aftercare plans check NEW --against DIR`: a recorded journey's order and events run
through the recorded plan and a changed one in virtual time; the report says how
that customer's messages change."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from engine.cli.app import app
from engine.journeys.replay.fetching import read_history_file
from engine.simulation.backtest import backtest, same_time_of_week
from tests.engine.journeys.plan_changes.test_plan_diff import changed_plan
from workflows.plans.catalogue import load_plan

HISTORIES = Path(__file__).resolve().parents[2] / "histories"
PROMOTER = HISTORIES / "default_promoter.json"


def recorded_sends(path: Path) -> list[str]:
    """The steps the recorded journey sent (its send_message activities)."""
    history = asyncio.run(read_history_file(path)).history
    steps = []
    for event in history.events:
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == "send_message":
            steps.append(json.loads(scheduled.input.payloads[0].data)["step"])
    return steps


def test_a_backtest_reports_each_customers_changed_messages(tmp_path: Path) -> None:
    against = tmp_path / "against"
    against.mkdir()
    shutil.copy(PROMOTER, against)
    shutil.copy(HISTORIES / "consumables_replenishment.run1.json", against)
    new = load_plan(changed_plan(tmp_path))

    report = asyncio.run(backtest(new, against))

    assert report.skipped == {"consumables_replenishment.run1.json": "on plan consumables"}
    [customer] = report.customers
    assert customer.journey_id == "default_promoter"
    # Under the plan it ran, the order and events give the messages the history sent.
    assert sorted(m.step for m in customer.before) == sorted(recorded_sends(PROMOTER))
    before = {m.step: m for m in customer.before}
    after = {m.step: m for m in customer.after}
    assert "product_education" in before
    assert "product_education" not in after
    # Delivered at +2d: the thank-you 4 h later before, a day later after.
    assert after["thank_you"].after > before["thank_you"].after
    assert before["shipping_notice"].channel == after["shipping_notice"].channel == "email"
    changes = customer.changes
    assert any(line.startswith("product_education: no longer sent") for line in changes)
    assert any(line.startswith("thank_you: at +2d4h -> +3d") for line in changes), changes


def test_the_command_prints_the_report(tmp_path: Path) -> None:
    new = changed_plan(tmp_path)
    result = CliRunner().invoke(app, ["plans", "check", str(new), "--against", str(PROMOTER)])
    assert result.exit_code == 0, result.output
    # One step dropped, one added: as many messages, not the same ones.
    assert "default_promoter: 8 -> 8 messages" in result.output
    assert "product_education: no longer sent" in result.output
    assert "care_tips: newly sent (email, +7d)" in result.output
    assert "1 customers: 1 with changed messages" in result.output


def test_a_backtest_starts_at_the_recorded_hour_and_weekday() -> None:
    recorded = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)  # a Tuesday, 09:00 UTC
    now = datetime(2027, 7, 15, 15, 25, tzinfo=UTC)  # a Thursday afternoon
    start = same_time_of_week(now, recorded)
    assert start == datetime(2027, 7, 20, 9, 0, tzinfo=UTC)  # the next Tuesday, 09:00
    assert same_time_of_week(start, recorded) == start
