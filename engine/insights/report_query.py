"""The plan report from the database: a few grouped queries over the message
ledger, the engagement table and the conversions (SQLite and PostgreSQL alike).

Messages belong to the period by the creation time of their ledger row (a
cohort): their clicks, unsubscribes, complaints and conversions count whenever
they happened, so a late click still lands on the message that earned it and
numbers of a closed period only grow as late outcomes arrive. Counting is per
message (a message clicked twice is one clicked message), never per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.insights.experiment_stats import DEFAULT_ALPHA, METHOD, compare_arms
from engine.insights.report_model import (
    DailyFigures,
    ExperimentReport,
    Period,
    PlanReport,
    StepFigures,
)
from engine.platform.database.tables import (
    Conversion,
    EngagementEvent,
    EngagementKind,
    ExperimentDecision,
    Message,
    MessageStatus,
)
from engine.platform.database.timestamps import as_utc
from workflows.vocabulary import DELIVERY_REPORTING_CHANNELS

# For channels without delivery reports an accepted message counts as delivered
# unless it bounced or failed later.
REPORTED_CHANNELS = tuple(sorted(channel.value for channel in DELIVERY_REPORTING_CHANNELS))
_NOT_DELIVERED = (EngagementKind.BOUNCED, EngagementKind.FAILED, EngagementKind.UNDELIVERED)


def _event(kind: str | Iterable[str], *, human_only: bool = False) -> ColumnElement[bool]:
    """Whether the ledger message of the outer query has an engagement event of ``kind``."""
    kinds = [kind] if isinstance(kind, str) else list(kind)
    condition = and_(EngagementEvent.message_id == Message.id, EngagementEvent.kind.in_(kinds))
    if human_only:
        condition = and_(condition, EngagementEvent.automated.is_(False))
    return exists().where(condition)


def _converted() -> ColumnElement[bool]:
    return exists().where(Conversion.message_id == Message.id)


def _delivered() -> ColumnElement[bool]:
    return or_(
        Message.delivery_status == "delivered",
        _event(EngagementKind.DELIVERED),
        and_(
            Message.channel.not_in(REPORTED_CHANNELS),
            Message.status == MessageStatus.SENT,
            not_(_event(_NOT_DELIVERED)),
        ),
    )


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _utc_day(column: Any, dialect: str) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a timestamp column, in UTC."""
    if dialect == "sqlite":
        # Stored as UTC text: date() reads the first ten characters' worth.
        return func.date(column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


class PlanReports:
    """Builds :class:`PlanReport` from the database behind ``sessions``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def plan_seen(self, plan: str) -> bool:
        """Whether the ledger has any message of any version of ``plan``."""
        async with self._sessions() as session:
            found = await session.scalar(select(Message.id).where(self._of_plan(plan)).limit(1))
        return found is not None

    async def report(
        self, plan: str, period: Period, *, alpha: float = DEFAULT_ALPHA
    ) -> PlanReport:
        async with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            in_cohort = and_(
                self._of_plan(plan),
                Message.created_at >= period.since,
                Message.created_at < period.until,
            )
            steps = await self._steps(session, in_cohort)
            experiments = await self._experiments(session, in_cohort, alpha)
            days = await self._days(session, in_cohort, period, dialect)
        return PlanReport(
            plan=plan,
            period=period,
            steps=steps,
            experiments=experiments,
            days=days,
            alpha=alpha,
            statistics_method=METHOD,
        )

    @staticmethod
    def _of_plan(plan: str) -> ColumnElement[bool]:
        # Ledger rows carry the plan's label, "default@v3": every version counts.
        return or_(Message.plan == plan, Message.plan.startswith(f"{plan}@", autoescape=True))

    async def _steps(
        self, session: AsyncSession, in_cohort: ColumnElement[bool]
    ) -> tuple[StepFigures, ...]:
        figures = await session.execute(
            select(
                Message.step,
                Message.channel,
                func.count(Message.id),
                _count(Message.status == MessageStatus.SENT),
                _count(_delivered()),
                _count(_event(EngagementKind.CLICKED, human_only=True)),
                _count(_converted()),
                _count(_event(EngagementKind.UNSUBSCRIBED)),
                _count(_event(EngagementKind.COMPLAINED)),
            )
            .where(in_cohort)
            .group_by(Message.step, Message.channel)
        )
        revenue: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        amounts = await session.execute(
            select(
                Message.step,
                Message.channel,
                Conversion.currency,
                func.sum(Conversion.revenue_minor),
            )
            .join(Conversion, Conversion.message_id == Message.id)
            .where(in_cohort)
            .group_by(Message.step, Message.channel, Conversion.currency)
        )
        for step, channel, currency, amount in amounts:
            revenue[(step, channel)][currency] = int(amount or 0)
        rows = [
            StepFigures(
                step=step,
                channel=channel,
                scheduled=int(scheduled),
                sent=int(sent),
                delivered=int(delivered),
                clicked=int(clicked),
                converted=int(converted),
                revenue=dict(sorted(revenue[(step, channel)].items())),
                unsubscribes=int(unsubscribes),
                complaints=int(complaints),
            )
            for (
                step,
                channel,
                scheduled,
                sent,
                delivered,
                clicked,
                converted,
                unsubscribes,
                complaints,
            ) in figures
        ]
        # The plan's order is not in the ledger; biggest steps first reads well.
        return tuple(sorted(rows, key=lambda row: (-row.scheduled, row.step, row.channel)))

    async def _experiments(
        self, session: AsyncSession, in_cohort: ColumnElement[bool], alpha: float
    ) -> tuple[ExperimentReport, ...]:
        arms = await session.execute(
            select(
                Message.experiment,
                Message.variant,
                func.min(Message.step),
                func.count(Message.id),
                _count(_converted()),
            )
            .where(in_cohort, Message.experiment.is_not(None), Message.variant.is_not(None))
            .group_by(Message.experiment, Message.variant)
        )
        counts: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        steps: dict[str, str] = {}
        for experiment, variant, step, exposed, conversions in arms:
            name = str(experiment)  # not NULL: filtered above
            counts[name][str(variant)] = (int(exposed), int(conversions))
            steps[name] = min(step, steps.get(name, step))
        if not counts:
            return ()
        decisions = {
            row.experiment: row
            for row in await session.scalars(
                select(ExperimentDecision).where(ExperimentDecision.experiment.in_(list(counts)))
            )
        }
        reports = []
        for experiment in sorted(counts):
            baseline, variants = compare_arms(counts[experiment], alpha=alpha)
            decision = decisions.get(experiment)
            reports.append(
                ExperimentReport(
                    experiment=experiment,
                    step=steps[experiment],
                    baseline=baseline,
                    variants=variants,
                    winner=decision.winner if decision else None,
                    decided_at=as_utc(decision.decided_at) if decision else None,
                )
            )
        return tuple(reports)

    async def _days(
        self,
        session: AsyncSession,
        in_cohort: ColumnElement[bool],
        period: Period,
        dialect: str,
    ) -> tuple[DailyFigures, ...]:
        days = {
            day: DailyFigures(day)
            for day in _days_between(
                period.since.date(), (period.until - timedelta(microseconds=1)).date()
            )
        }
        sent_at = func.coalesce(Message.sent_at, Message.created_at)
        sent_day = _utc_day(sent_at, dialect)
        for day, count in await session.execute(
            select(sent_day, func.count(Message.id))
            .where(in_cohort, Message.status == MessageStatus.SENT)
            .group_by(sent_day)
        ):
            _add(days, day, sent=int(count))
        first_clicks = (
            select(EngagementEvent.message_id, func.min(EngagementEvent.occurred_at).label("first"))
            .join(Message, Message.id == EngagementEvent.message_id)
            .where(
                in_cohort,
                EngagementEvent.kind == EngagementKind.CLICKED,
                EngagementEvent.automated.is_(False),
            )
            .group_by(EngagementEvent.message_id)
            .subquery()
        )
        click_day = _utc_day(first_clicks.c.first, dialect)
        for day, count in await session.execute(
            select(click_day, func.count()).select_from(first_clicks).group_by(click_day)
        ):
            _add(days, day, clicked=int(count))
        conversion_day = _utc_day(Conversion.occurred_at, dialect)
        for day, count in await session.execute(
            select(conversion_day, func.count(Conversion.id))
            .join(Message, Message.id == Conversion.message_id)
            .where(in_cohort)
            .group_by(conversion_day)
        ):
            _add(days, day, converted=int(count))
        return tuple(days[day] for day in sorted(days))


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _add(days: dict[date, DailyFigures], text: str | None, **counts: int) -> None:
    """Add ``counts`` to the day named ``text`` (a late click or conversion may fall
    after the period: it gets a day of its own)."""
    if not text:
        return
    day = date.fromisoformat(str(text)[:10])
    current = days.get(day, DailyFigures(day))
    days[day] = replace(
        current, **{name: getattr(current, name) + value for name, value in counts.items()}
    )
