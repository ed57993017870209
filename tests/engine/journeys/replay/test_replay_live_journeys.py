"""`aftercare replay` against journeys running on a real dev server, encrypted under
their customers' keys: today's tree passes, a tree with a breaking change names every
live journey it breaks, and an erased customer's journey is counted and skipped."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from temporalio.client import Client

from engine.journeys.replay.live import replay_running
from engine.journeys.replay.reporting import render_text
from engine.journeys.replay.routine import ReplayOptions
from engine.journeys.replay.selection import Selection
from tests.engine.journeys.replay.conftest import LiveStack
from tests.support.orders import domain_order
from tests.support.stored_history import mail_for
from tests.support.waiting import eventually
from workflows.orders import Order

REPO = Path(__file__).resolve().parents[4]
# The breaking change: the journey's sends scheduled under another activity name, so
# every recorded send_message no longer matches the command the code issues.
RENAMED_SEND = ('SEND_MESSAGE_ACTIVITY = "send_message"', 'SEND_MESSAGE_ACTIVITY = "send_msg"')


def broken_tree(root: Path) -> Path:
    """A copy of ``workflows/`` with the breaking change, in a folder to put first on
    sys.path."""
    tree = root / "tree"
    shutil.copytree(REPO / "workflows", tree / "workflows", ignore=shutil.ignore_patterns("*.pyc"))
    contracts = tree / "workflows" / "contracts.py"
    source = contracts.read_text()
    assert source.count(RENAMED_SEND[0]) == 1
    contracts.write_text(source.replace(*RENAMED_SEND))
    return tree


async def aftercare_replay(
    stack: LiveStack, workdir: Path, *args: str, first_on_path: Path | None = None
) -> tuple[int, str, dict[str, Any]]:
    """``aftercare replay ARGS --json`` in a process of its own (cold key cache, as an
    engineer's run would be); exit status, text report, JSON report."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    report = workdir / "report.json"
    env = stack.process_env()
    env["PYTHONPATH"] = ":".join(str(p) for p in (first_on_path, REPO) if p is not None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from engine.cli.app import app; app()",
        "replay",
        *args,
        "--json",
        str(report),
        cwd=workdir,  # not the repo: `-c` puts the working directory first on sys.path
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode()
    assert report.exists(), text
    return process.returncode or 0, text, json.loads(report.read_text())


async def start(stack: LiveStack, order: Order) -> str:
    started = await stack.directory.start(order)
    return started.journey_id


async def running_journeys(client: Client) -> set[str]:
    return {w.id async for w in client.list_workflows(Selection().query())}


async def test_replay_names_the_journeys_a_breaking_change_would_break(
    live_stack: LiveStack, mail_sink: Any, tmp_path: Path
) -> None:
    kept = [domain_order(name="Ilse Brandauer"), domain_order(name="Tomas Quell")]
    erased = domain_order(name="Wanda Erased")
    ids = [await start(live_stack, order) for order in [*kept, erased]]
    # Each journey has sent its confirmation: its history holds a send_message.
    for journey_id in ids:
        await mail_for(mail_sink, journey_id)
    kept_ids, erased_id = ids[:2], ids[2]
    # The customer is erased while their journey is still listed as running (the
    # erasure's terminate not yet done): the key is gone, the history unreadable.
    assert await live_stack.keys.destroy(erased.customer.id)
    await eventually(lambda: running_journeys(live_stack.client), lambda found: set(ids) <= found)

    # Today's tree, in this process (with a key store of its own: a cold cache).
    today = await replay_running(live_stack.settings, Selection(), ReplayOptions(parallel=2))
    assert today.ok, render_text(today)
    assert sorted(today.passed) == sorted(kept_ids)
    assert today.erased == [erased_id]
    assert today.nondeterministic == []
    assert today.unreadable == []

    # The changed tree, first on sys.path of an `aftercare replay` process.
    code_broken, text_broken, broken = await aftercare_replay(
        live_stack, tmp_path / "broken", first_on_path=broken_tree(tmp_path / "change")
    )

    assert code_broken == 1, text_broken
    assert broken["ok"] is False
    assert broken["erased_skipped"] == 1
    assert broken["passed"] == []
    named = {problem["journey_id"]: problem for problem in broken["nondeterministic"]}
    assert set(named) == set(kept_ids), text_broken
    for journey_id, problem in named.items():
        assert "send_message" in problem["message"], problem
        # The event named is the recorded send the changed code no longer matches.
        history = await live_stack.client.get_workflow_handle(journey_id).fetch_history()
        [event] = [e for e in history.events if e.event_id == problem["event_id"]]
        assert event.activity_task_scheduled_event_attributes.activity_type.name == (
            "send_message"
        ), event
        assert f"NON-DETERMINISTIC  {journey_id}" in text_broken
    assert "2 non-deterministic" in text_broken
    assert "1 erased customers skipped" in text_broken
    assert erased_id not in text_broken

    for journey_id in ids:
        await live_stack.client.get_workflow_handle(journey_id).terminate(reason="test over")
