"""Getting the histories to replay: from a Temporal server, or from exported JSON files."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory

from engine.journeys.replay.selection import Selection


@dataclass(frozen=True)
class FetchedHistory:
    """One run of a journey, its payloads as the server stores them (encrypted)."""

    workflow_id: str
    run_id: str
    history: History


@dataclass(frozen=True)
class ListedRun:
    workflow_id: str
    run_id: str


async def select_runs(
    client: Client, selection: Selection, *, seed: int | None = None
) -> list[ListedRun]:
    """The runs the visibility query names; a uniform random ``selection.sample`` of them
    (reservoir sampling: the listing is read once and never held whole)."""
    rng = random.Random(seed)
    chosen: list[ListedRun] = []
    seen = 0
    async for execution in client.list_workflows(selection.query()):
        run = ListedRun(execution.id, execution.run_id)
        seen += 1
        if selection.sample is None or len(chosen) < selection.sample:
            chosen.append(run)
            continue
        slot = rng.randrange(seen)
        if slot < selection.sample:
            chosen[slot] = run
    return chosen


async def fetch_history(client: Client, run: ListedRun) -> FetchedHistory:
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    fetched = await handle.fetch_history()
    return FetchedHistory(run.workflow_id, run.run_id, History(events=fetched.events))


def history_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.json`` below it when it is a folder."""
    if path.is_dir():
        return sorted(path.rglob("*.json"))
    return [path]


def history_file_loaders(path: Path) -> list[Callable[[], Awaitable[FetchedHistory]]]:
    """One loader per history file under ``path`` (read when the loader runs)."""
    return [partial(read_history_file, file) for file in history_files(path)]


async def read_history_file(file: Path) -> FetchedHistory:
    """A history exported by ``aftercare replay --export``, written by ``make
    histories`` or shown by ``temporal workflow show --output json``; the journey id is
    the file name's stem."""
    text = await asyncio.to_thread(file.read_text)
    history = WorkflowHistory.from_json(file.stem, text)
    events = History(events=history.events)
    return FetchedHistory(file.stem, _run_id(events), events)


def _run_id(history: History) -> str:
    first = history.events[0] if history.events else None
    if first is None or not first.HasField("workflow_execution_started_event_attributes"):
        return ""
    return first.workflow_execution_started_event_attributes.original_execution_run_id
