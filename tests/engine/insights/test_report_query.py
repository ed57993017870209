"""The plan report's figures, from traffic written straight into the tables (SQLite
and PostgreSQL): every figure checked against rows the test knows it wrote."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.insights.report_model import Period
from engine.insights.report_query import PlanReports
from engine.platform.database.tables import (
    Conversion,
    EngagementEvent,
    EngagementKind,
    ExperimentDecision,
    Message,
    MessageStatus,
)
from tools.report_traffic import ExperimentTraffic, StepTraffic, Traffic, write_traffic

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PERIOD = Period(NOW - timedelta(days=30), NOW)


class Ledger:
    """Writes single rows with the fields a report reads."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.serial = 0

    async def message(
        self,
        step: str,
        channel: str = "email",
        *,
        status: str = MessageStatus.SENT,
        plan: str = "default@v1",
        at: datetime = NOW - timedelta(days=2),
        delivery_status: str | None = None,
        experiment: str | None = None,
        variant: str | None = None,
    ) -> int:
        self.serial += 1
        async with self.sessions() as session, session.begin():
            message_id = await session.scalar(
                insert(Message)
                .values(
                    idempotency_key=f"k-{self.serial}",
                    journey_id=f"order-{self.serial}",
                    step=step,
                    channel=channel,
                    template=step,
                    recipient="r@example.invalid",
                    status=status,
                    created_at=at,
                    sent_at=at if status == MessageStatus.SENT else None,
                    delivery_status=delivery_status,
                    plan=plan,
                    customer_id=f"c-{self.serial}",
                    experiment=experiment,
                    variant=variant,
                )
                .returning(Message.id)
            )
        assert isinstance(message_id, int)
        return message_id

    async def event(
        self, message_id: int, kind: str, *, automated: bool = False, at: datetime = NOW
    ) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                insert(EngagementEvent).values(
                    message_id=message_id, kind=kind, automated=automated, occurred_at=at
                )
            )

    async def conversion(
        self, message_id: int, revenue: int, currency: str = "EUR", at: datetime = NOW
    ) -> None:
        self.serial += 1
        async with self.sessions() as session, session.begin():
            await session.execute(
                insert(Conversion).values(
                    order_id=f"o-{self.serial}",
                    message_id=message_id,
                    customer_id="c",
                    revenue_minor=revenue,
                    currency=currency,
                    attributed_by="click",
                    occurred_at=at,
                )
            )


async def test_step_figures_count_messages_not_events(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ledger = Ledger(db_sessions)
    clicked_twice = await ledger.message("thank_you")
    await ledger.event(clicked_twice, EngagementKind.CLICKED)
    await ledger.event(clicked_twice, EngagementKind.CLICKED)
    await ledger.conversion(clicked_twice, 2500)
    await ledger.conversion(clicked_twice, 1000, "USD")
    scanned_only = await ledger.message("thank_you")
    await ledger.event(scanned_only, EngagementKind.CLICKED, automated=True)
    bounced = await ledger.message("thank_you")
    await ledger.event(bounced, EngagementKind.BOUNCED)
    await ledger.event(bounced, EngagementKind.COMPLAINED)
    unsubscribed = await ledger.message("thank_you")
    await ledger.event(unsubscribed, EngagementKind.UNSUBSCRIBED)
    await ledger.message("thank_you", status=MessageStatus.FAILED)
    # Texts count as delivered only when Twilio says so.
    await ledger.message("thank_you", "sms", delivery_status="delivered")
    await ledger.message("thank_you", "sms", delivery_status="sent")
    reported = await ledger.message("thank_you", "sms")
    await ledger.event(reported, EngagementKind.DELIVERED)
    # Outside the plan or the period: not counted.
    await ledger.message("thank_you", plan="consumables@v1")
    await ledger.message("thank_you", plan="defaults@v1")
    await ledger.message("thank_you", at=NOW - timedelta(days=40))
    await ledger.message("thank_you", at=NOW + timedelta(hours=1))
    await ledger.message("thank_you", plan="default@v2")

    report = await PlanReports(db_sessions).report("default", PERIOD)

    by_channel = {(row.step, row.channel): row for row in report.steps}
    email = by_channel[("thank_you", "email")]
    assert (email.scheduled, email.sent, email.delivered) == (6, 5, 4)
    assert (email.clicked, email.converted) == (1, 1)
    assert email.revenue == {"EUR": 2500, "USD": 1000}
    assert (email.unsubscribes, email.complaints) == (1, 1)
    sms = by_channel[("thank_you", "sms")]
    assert (sms.scheduled, sms.sent, sms.delivered, sms.clicked) == (3, 3, 2, 0)
    assert report.totals().scheduled == 9
    assert report.days[0].day == date(2026, 11, 6)
    assert report.days[-1].day == date(2026, 12, 6)
    assert sum(day.sent for day in report.days) == 8
    assert sum(day.clicked for day in report.days) == 1
    assert sum(day.converted for day in report.days) == 2
    assert await PlanReports(db_sessions).plan_seen("default")
    assert not await PlanReports(db_sessions).plan_seen("nothing")


async def test_experiment_with_holdout_and_decision(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ledger = Ledger(db_sessions)
    for variant, exposed, converted in (("A", 40, 4), ("B", 40, 12), ("holdout", 20, 1)):
        for index in range(exposed):
            status = MessageStatus.SKIPPED if variant == "holdout" else MessageStatus.SENT
            message_id = await ledger.message(
                "review_request", status=status, experiment="subject-test", variant=variant
            )
            if index < converted:
                await ledger.conversion(message_id, 3000)
    async with db_sessions() as session, session.begin():
        session.add(ExperimentDecision(experiment="subject-test", winner="B", decided_at=NOW))

    report = await PlanReports(db_sessions).report("default", PERIOD)

    (experiment,) = report.experiments
    assert experiment.experiment == "subject-test"
    assert experiment.step == "review_request"
    assert experiment.baseline == "holdout"
    assert experiment.winner == "B"
    assert experiment.decided_at == NOW
    arms = {arm.variant: arm for arm in experiment.variants}
    assert arms["holdout"].baseline
    assert arms["holdout"].uplift is None
    assert (arms["B"].exposed, arms["B"].conversions) == (40, 12)
    uplift_b = arms["B"].uplift
    assert uplift_b is not None
    assert abs(uplift_b.difference - (12 / 40 - 1 / 20)) < 1e-9
    assert uplift_b.ci_low < uplift_b.difference < uplift_b.ci_high


async def test_generated_traffic_where_one_variant_truly_converts_better(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    traffic = Traffic(
        plan_label="default@v1",
        now=NOW,
        steps=[StepTraffic("thank_you", "email", messages=50)],
        experiments=[
            ExperimentTraffic(
                "review-subject",
                "review_request",
                "email",
                {"control": (1.0, 0.05), "short": (1.0, 0.12)},
                customers=800,
            )
        ],
    )
    await write_traffic(db_sessions, traffic)

    report = await PlanReports(db_sessions).report("default", PERIOD)

    (experiment,) = report.experiments
    assert experiment.baseline == "control"
    arms = {arm.variant: arm for arm in experiment.variants}
    short = arms["short"].uplift
    assert short is not None
    assert short.significant
    assert short.ci_low > 0
    best = max(experiment.variants, key=lambda arm: arm.conversion_rate)
    assert best.variant == "short"
