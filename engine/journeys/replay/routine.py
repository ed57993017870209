"""One replay: fetch, decode, (export,) replay each journey, within a bound, into a report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadCodec

from engine.journeys.replay.anonymising import Anonymiser
from engine.journeys.replay.decoding import ErasedJourney, HistoryDecodeError, decode_history
from engine.journeys.replay.exporting import write_history
from engine.journeys.replay.fetching import FetchedHistory
from engine.journeys.replay.replaying import replay_one, replayer
from engine.journeys.replay.reporting import JourneyProblem, ReplayReport

HistoryLoader = Callable[[], Awaitable[FetchedHistory]]


@dataclass(frozen=True)
class ReplayOptions:
    # Journeys fetched, decoded and replayed at once.
    parallel: int = 4
    # Where anonymised histories are written (None: no export).
    export_to: Path | None = None


async def run_replay(
    loaders: Iterable[HistoryLoader], codec: PayloadCodec | None, options: ReplayOptions
) -> ReplayReport:
    """Every history ``loaders`` give, decoded with ``codec`` (None: already plaintext)
    and replayed; with ``export_to``, anonymised and written first, and the written
    history is the one replayed (so an export is known to replay)."""
    report = ReplayReport()
    bound = asyncio.Semaphore(max(1, options.parallel))
    replaying = replayer()
    anonymiser = Anonymiser() if options.export_to is not None else None

    async def one(load: HistoryLoader) -> None:
        async with bound:
            fetched = await load()
            try:
                decoded = await decode_history(fetched.history, codec)
            except HistoryDecodeError as err:
                report.unreadable.append(
                    JourneyProblem(fetched.workflow_id, fetched.run_id, str(err))
                )
                return
            if isinstance(decoded, ErasedJourney):
                report.erased.append(fetched.workflow_id)
                return
            if anonymiser is not None and options.export_to is not None:
                decoded = anonymiser.anonymise(decoded)
                report.exported.append(
                    await write_history(options.export_to, fetched.workflow_id, decoded)
                )
            failure = await replay_one(
                replaying,
                WorkflowHistory(fetched.workflow_id, list(decoded.events)),
            )
            if failure is None:
                report.passed.append(fetched.workflow_id)
                return
            problem = JourneyProblem(
                fetched.workflow_id, fetched.run_id, failure.message, failure.event_id
            )
            if failure.nondeterministic:
                report.nondeterministic.append(problem)
            else:
                report.failed.append(problem)

    async with asyncio.TaskGroup() as group:
        for load in loaders:
            group.create_task(one(load))
    return report
