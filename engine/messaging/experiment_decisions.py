"""Experiments stopped with a winner: from then on every send of the experiment's
step uses the winner's content, in every journey, asleep or not, without a restart.

The send activity asks :meth:`ExperimentDecisions.winner` before it claims anything
(``activities.send_message``): the journey carries every arm's content with each
send (``workflows.experiments.ExperimentArm``), so the winner's template and subject
are at hand whatever arm the customer was assigned. A winner named ``holdout``
stops the message altogether. Answers come from a copy of the decisions at most
``cache_ttl`` old (2 s by default), like the pauses' registry: a decision reaches
every send within that long. A decision is final (stopping twice is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.timed_copy import TimedCopy
from engine.platform.database.tables import ExperimentDecision
from engine.platform.database.timestamps import as_utc

DEFAULT_CACHE_TTL = timedelta(seconds=2)


class AlreadyDecided(Exception):
    """The experiment was stopped already; its decision stands."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(
            f"experiment {decision.experiment} was stopped with winner {decision.winner}"
        )
        self.decision = decision


@dataclass(frozen=True)
class Decision:
    experiment: str
    winner: str
    decided_at: datetime
    decided_by: str | None  # the API key's public id


class ExperimentDecisions:
    """The decisions in the database: decide, list, and (cached) the winner of one."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        cache_ttl: timedelta = DEFAULT_CACHE_TTL,
    ) -> None:
        self._sessions = sessions
        self._copy = TimedCopy(self._read_winners, cache_ttl)

    async def decide(
        self,
        experiment: str,
        winner: str,
        *,
        decided_by: str | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """Stop ``experiment`` with ``winner``; AlreadyDecided when it was stopped."""
        row = ExperimentDecision(
            experiment=experiment,
            winner=winner,
            decided_at=(now or datetime.now(UTC)).astimezone(UTC),
            decided_by=decided_by,
        )
        decision = _decision_of(row)
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:
            existing = await self.get(experiment)
            if existing is None:
                raise
            raise AlreadyDecided(existing) from None
        self._copy.forget()
        return decision

    async def get(self, experiment: str) -> Decision | None:
        async with self._sessions() as session:
            row = await session.get(ExperimentDecision, experiment)
            return _decision_of(row) if row is not None else None

    async def all(self) -> list[Decision]:
        """Every decision, read now, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ExperimentDecision).order_by(
                    ExperimentDecision.decided_at, ExperimentDecision.experiment
                )
            )
            return [_decision_of(row) for row in rows]

    async def winner(self, experiment: str) -> str | None:
        """The winner of ``experiment`` if it was stopped (from the cached copy)."""
        return (await self._copy.get()).get(experiment)

    async def _read_winners(self) -> dict[str, str]:
        return {decision.experiment: decision.winner for decision in await self.all()}


def _decision_of(row: ExperimentDecision) -> Decision:
    return Decision(
        experiment=row.experiment,
        winner=row.winner,
        decided_at=as_utc(row.decided_at),
        decided_by=row.decided_by,
    )
