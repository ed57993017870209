"""`aftercare replay --export`: a live journey's history decrypted, its personal data
replaced by stable fakes, written as JSON that replays (with `--file` and as the test
replayer reads tests/histories/), holding no original name, email, phone or street."""

from __future__ import annotations

import base64
import json
from functools import partial
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from typer.testing import CliRunner

from engine.cli.app import app
from engine.journeys.replay.anonymising import Anonymiser
from engine.journeys.replay.fetching import fetch_history, history_file_loaders, select_runs
from engine.journeys.replay.routine import ReplayOptions, run_replay
from engine.journeys.replay.selection import Selection
from engine.platform.codec.payloads import DATA_CONVERTER
from engine.platform.codec.runtime import codec_for
from tests.engine.journeys.replay.conftest import LiveStack
from tests.support.orders import domain_order
from tests.support.stored_history import mail_for
from workflows.order_journey import OrderJourney

RECORDED = Path(__file__).resolve().parents[3] / "histories" / "default_promoter.json"


def payload_text(path: Path) -> str:
    """Every payload's data in an exported file, decoded from the JSON's base64."""
    history = json.loads(path.read_text())
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if "metadata" in value and "data" in value:
                found.append(base64.b64decode(value["data"]).decode())
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(history)
    return "\n".join(found)


async def test_an_exported_live_journey_replays_without_its_customer(
    live_stack: LiveStack, mail_sink: object, tmp_path: Path
) -> None:
    order = domain_order(
        name="Hedwig Kallenbach",
        email="hedwig.kallenbach@example.test",
        phone="+4915112345678",
    )
    started = await live_stack.directory.start(order)
    await mail_for(mail_sink, started.journey_id)  # type: ignore[arg-type]
    runs = await select_runs(
        live_stack.client, Selection(journey_id=started.journey_id, running_only=False)
    )
    assert len(runs) == 1
    export = tmp_path / "export"
    report = await run_replay(
        [partial(fetch_history, live_stack.client, run) for run in runs],
        codec_for(live_stack.settings, live_stack.keys),
        ReplayOptions(export_to=export),
    )
    assert report.ok, report
    assert report.passed == [started.journey_id]
    [written] = report.exported
    text = written.read_text()
    decoded = payload_text(written)
    for original in (
        "Hedwig",
        "Kallenbach",
        "hedwig.kallenbach@example.test",
        "+4915112345678",
        "Kastanienallee",
    ):
        assert original not in text, original
        assert original not in decoded, original
    # Stable fakes: a fresh anonymiser (another run, another engineer) maps the same
    # values to the same fakes, and the customer's name reads the same in the address.
    fakes = Anonymiser()
    assert f'"email":"{fakes.fake_for("email", order.customer.email)}"' in decoded
    assert f'"phone":"{fakes.fake_for("phone", order.customer.phone)}"' in decoded
    assert decoded.count(f'"name":"{fakes.fake_for("name", order.customer.name)}"') >= 2
    # Ids and what plans choose by stay.
    assert order.order_id in decoded
    assert '"country_code":"DE"' in decoded

    # The file replays through --file's reader, and as tests/workflows/test_replay.py reads.
    again = await run_replay(history_file_loaders(written), None, ReplayOptions())
    assert again.ok, again
    assert again.passed == [written.stem]
    history = WorkflowHistory.from_json(written.stem, text)
    result = await Replayer(
        workflows=[OrderJourney], data_converter=DATA_CONVERTER
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
    await live_stack.client.get_workflow_handle(started.journey_id).terminate(reason="test over")


def test_the_command_exports_and_replays_files(tmp_path: Path) -> None:
    """`aftercare replay --file F --export DIR`, then `--file DIR`: the recorded
    history's customer is gone and the export replays."""
    runner = CliRunner()
    export = tmp_path / "export"
    first = runner.invoke(app, ["replay", "--file", str(RECORDED), "--export", str(export)])
    assert first.exit_code == 0, first.output
    assert "1 replayed: 1 passed" in first.output
    written = export / RECORDED.name
    decoded = payload_text(written)
    for original in ("Jane Doe", "jane.doe@example.test", "Kastanienallee 12"):
        assert original in payload_text(RECORDED)
        assert original not in decoded, original
    assert '"timezone":"Europe/Berlin"' in decoded
    second = runner.invoke(app, ["replay", "--file", str(export)])
    assert second.exit_code == 0, second.output
    assert "OK" in second.output
