"""Sampled gauges of what waits to be sent: the ledger's unsettled rows and the
operators' pauses in force, read every few seconds by the worker process.

One cheap query each (the ledger's ``status`` is indexed; the pauses are a handful
of rows). A status that no row has any more is set back to 0, so a gauge never
shows a backlog that cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.ledger import FINAL_STATUSES
from engine.messaging.pauses import PauseRegistry, ScopeKind
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import Message, MessageStatus
from engine.platform.database.timestamps import as_utc
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from engine.platform.telemetry.catalogue import (
    MESSAGES_WAITING,
    OLDEST_WAITING_SECONDS,
    SENDING_PAUSES,
)
from engine.platform.telemetry.runtime import Instruments, Process, process_runtime

log = get_logger(__name__)

SAMPLE_EVERY = timedelta(seconds=15)
# The statuses of aftercare_messages_waiting for a claimed row: an attempt holds its
# live lease (it is being sent), or none does (deferred by the cap, or a retry waits).
SENDING = "sending"
WAITING = "waiting"


@dataclass(frozen=True)
class Waiting:
    status: str
    count: int
    oldest: datetime


async def waiting_messages(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> list[Waiting]:
    """The ledger's unsettled rows by status (claimed rows as SENDING or WAITING), with
    when the oldest of each was first claimed."""
    table = Message.__table__
    rows = table.c
    status = case(
        (
            (rows.status == MessageStatus.CLAIMED) & (rows.lease_until > now),
            SENDING,
        ),
        (rows.status == MessageStatus.CLAIMED, WAITING),
        else_=rows.status,
    ).label("waiting_status")
    query = (
        select(status, func.count(), func.min(rows.created_at))
        .where(rows.status.not_in(sorted(FINAL_STATUSES)))
        .group_by(status)
    )
    async with sessions() as session:
        result = await session.execute(query)
        return [Waiting(name, count, as_utc(oldest)) for name, count, oldest in result]


class BacklogGauges:
    """Sets the gauges from one sample of the ledger and the pauses."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pauses: PauseRegistry,
        instruments: Instruments,
    ) -> None:
        self._sessions = sessions
        self._pauses = pauses
        self._waiting = instruments.gauge(MESSAGES_WAITING)
        self._oldest = instruments.gauge(OLDEST_WAITING_SECONDS)
        self._paused = instruments.gauge(SENDING_PAUSES)
        # Every status shown once stays shown (at 0 when it has no row).
        self._statuses: set[str] = {SENDING, WAITING}

    async def sample(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        waiting = {entry.status: entry for entry in await waiting_messages(self._sessions, now)}
        self._statuses |= waiting.keys()
        for status in sorted(self._statuses):
            entry = waiting.get(status)
            self._waiting.set(entry.count if entry else 0, status=status)
            age = (now - entry.oldest).total_seconds() if entry else 0.0
            self._oldest.set(max(age, 0.0), status=status)
        in_force = Counter(pause.scope.kind for pause in await self._pauses.active())
        for kind in ScopeKind:
            self._paused.set(in_force.get(kind, 0), scope=kind.value)

    async def run(self, every: timedelta = SAMPLE_EVERY) -> None:
        """Sample now and every ``every`` until cancelled; a failed sample (the
        database away) is logged and the next one tried."""
        while True:
            try:
                await self.sample()
            except Exception as err:
                log.warning("backlog sample failed", error=type(err).__name__)
            await asyncio.sleep(every.total_seconds())


@contextlib.asynccontextmanager
async def sampling_backlog(
    settings: Settings, every: timedelta = SAMPLE_EVERY
) -> AsyncIterator[None]:
    """The worker's backlog gauges, sampled while the block runs; nothing at all (no
    database connection) when the worker serves no metrics."""
    runtime = process_runtime(settings, Process.WORKER)
    if runtime is None:
        yield
        return
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    gauges = BacklogGauges(sessions, PauseRegistry(sessions), Instruments(runtime.metric_meter))
    task = asyncio.create_task(gauges.run(every), name="backlog-gauges")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()
