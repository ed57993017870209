"""Generated traffic for the plan report: ledger rows, engagement and conversions
written straight into the tables, drawn from a seeded random generator with
known true rates, so a test knows what the report ought to find.

Used by the report's tests and, when no demo run is at hand, by the report's
screenshots (``make report-screenshots``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.database.tables import (
    Conversion,
    EngagementEvent,
    EngagementKind,
    Message,
    MessageStatus,
)


@dataclass(frozen=True)
class StepTraffic:
    """One step on one channel and its true rates (each of the message before it)."""

    step: str
    channel: str
    category: str = "relationship"
    messages: int = 200
    delivery_rate: float = 0.97
    click_rate: float = 0.12
    # Of clicked messages, the share that lead to a purchase.
    conversion_rate: float = 0.2
    unsubscribe_rate: float = 0.01
    complaint_rate: float = 0.002
    # Of clicked messages, the share with an extra click by a link scanner.
    scanner_rate: float = 0.3


@dataclass(frozen=True)
class ExperimentTraffic:
    """An experiment on one step: per arm its true conversion rate and weight."""

    experiment: str
    step: str
    channel: str
    # arm -> (weight, true conversion rate); an arm named "holdout" gets no message.
    arms: dict[str, tuple[float, float]]
    customers: int = 2000


@dataclass
class Traffic:
    plan_label: str
    now: datetime
    days: int = 30
    steps: Sequence[StepTraffic] = ()
    experiments: Sequence[ExperimentTraffic] = ()
    currency: str = "EUR"
    # Revenue of one attributed order, minor units, drawn uniformly from this range.
    order_value: tuple[int, int] = (1500, 12000)
    seed: int = 7
    _serial: int = field(default=0, init=False)

    def _key(self) -> str:
        self._serial += 1
        return f"generated-{self.seed}-{self._serial}"


async def write_traffic(sessions: async_sessionmaker[AsyncSession], traffic: Traffic) -> None:
    """Insert the traffic: one transaction."""
    rng = random.Random(traffic.seed)
    async with sessions() as session, session.begin():
        for step in traffic.steps:
            await _write_step(session, traffic, step, rng)
        for experiment in traffic.experiments:
            await _write_experiment(session, traffic, experiment, rng)


def _when(traffic: Traffic, rng: random.Random) -> datetime:
    # Later days carry more traffic: a plan that is growing looks like one.
    offset = traffic.days * (1 - rng.random() ** 0.8)
    return traffic.now - timedelta(days=offset)


async def _message(
    session: AsyncSession,
    traffic: Traffic,
    rng: random.Random,
    *,
    step: str,
    channel: str,
    category: str,
    status: str,
    experiment: str | None = None,
    variant: str | None = None,
) -> tuple[int, datetime, str]:
    created = _when(traffic, rng)
    customer = f"gen-customer-{rng.randrange(10**9)}"
    message_id = await session.scalar(
        insert(Message)
        .values(
            idempotency_key=traffic._key(),
            journey_id=f"order-gen-{rng.randrange(10**9)}",
            step=step,
            iteration=0,
            channel=channel,
            template=step,
            recipient="generated@example.invalid",
            status=status,
            attempts=1,
            created_at=created,
            updated_at=created,
            sent_at=created if status == MessageStatus.SENT else None,
            plan=traffic.plan_label,
            category=category,
            customer_id=customer,
            experiment=experiment,
            variant=variant,
        )
        .returning(Message.id)
    )
    assert message_id is not None
    return message_id, created, customer


async def _event(
    session: AsyncSession, message_id: int, kind: str, at: datetime, *, automated: bool = False
) -> None:
    await session.execute(
        insert(EngagementEvent).values(
            message_id=message_id, kind=kind, automated=automated, occurred_at=at
        )
    )


async def _conversion(
    session: AsyncSession,
    traffic: Traffic,
    rng: random.Random,
    message_id: int,
    customer: str,
    at: datetime,
    by: str,
) -> None:
    await session.execute(
        insert(Conversion).values(
            order_id=f"gen-order-{traffic._key()}",
            message_id=message_id,
            customer_id=customer,
            revenue_minor=rng.randint(*traffic.order_value),
            currency=traffic.currency,
            attributed_by=by,
            occurred_at=at,
        )
    )


async def _write_step(
    session: AsyncSession, traffic: Traffic, step: StepTraffic, rng: random.Random
) -> None:
    for _ in range(step.messages):
        failed = rng.random() < 0.01
        message_id, created, customer = await _message(
            session,
            traffic,
            rng,
            step=step.step,
            channel=step.channel,
            category=step.category,
            status=MessageStatus.FAILED if failed else MessageStatus.SENT,
        )
        if failed:
            continue
        if rng.random() >= step.delivery_rate:
            kind = EngagementKind.UNDELIVERED if step.channel != "email" else EngagementKind.BOUNCED
            await _event(session, message_id, kind, created + timedelta(minutes=2))
            continue
        if step.channel != "email":
            await _event(
                session, message_id, EngagementKind.DELIVERED, created + timedelta(seconds=20)
            )
        if rng.random() < step.unsubscribe_rate:
            await _event(
                session, message_id, EngagementKind.UNSUBSCRIBED, created + timedelta(hours=3)
            )
        if rng.random() < step.complaint_rate:
            await _event(
                session, message_id, EngagementKind.COMPLAINED, created + timedelta(hours=5)
            )
        if rng.random() >= step.click_rate:
            continue
        if rng.random() < step.scanner_rate:
            await _event(
                session,
                message_id,
                EngagementKind.CLICKED,
                created + timedelta(seconds=3),
                automated=True,
            )
        clicked_at = created + timedelta(hours=rng.uniform(0.1, 30))
        await _event(session, message_id, EngagementKind.CLICKED, clicked_at)
        if rng.random() < step.conversion_rate:
            bought_at = clicked_at + timedelta(hours=rng.uniform(0.1, 48))
            await _conversion(session, traffic, rng, message_id, customer, bought_at, "click")


async def _write_experiment(
    session: AsyncSession, traffic: Traffic, experiment: ExperimentTraffic, rng: random.Random
) -> None:
    names = sorted(experiment.arms)
    weights = [experiment.arms[name][0] for name in names]
    for _ in range(experiment.customers):
        arm = rng.choices(names, weights)[0]
        holdout = arm == "holdout"
        message_id, created, customer = await _message(
            session,
            traffic,
            rng,
            step=experiment.step,
            channel=experiment.channel,
            category="marketing",
            status=MessageStatus.SKIPPED if holdout else MessageStatus.SENT,
            experiment=experiment.experiment,
            variant=arm,
        )
        if not holdout and rng.random() < 0.3:
            await _event(session, message_id, EngagementKind.CLICKED, created + timedelta(hours=2))
        if rng.random() < experiment.arms[arm][1]:
            bought_at = created + timedelta(hours=rng.uniform(1, 20))
            by = "holdout" if holdout else "click"
            await _conversion(session, traffic, rng, message_id, customer, bought_at, by)
