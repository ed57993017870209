"""Conversions (SQLite and PostgreSQL): a purchase is credited to the customer's last
clicked message within the click window, else the last delivered within the delivery
window, else a holdout row; never outside the windows, never to transactional
messages, never by a scanner's click, and once per order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.insights.attribution import ConversionAttribution, Purchase, windows_from_plans
from engine.messaging.engagement import record_engagement
from engine.messaging.ledger import Claim, MessageLedger
from engine.platform.database.tables import Conversion
from workflows.plans.model import Attribution, PinnedPlan, Plan

# After every row's created_at (server time): purchases happen "later".
PLACED = datetime.now(UTC) + timedelta(days=30)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class Messages:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.ledger = MessageLedger(sessions)
        self.customer = f"cust-{uuid.uuid4().hex[:8]}"

    async def sent(
        self,
        step: str,
        at: datetime,
        *,
        category: str = "marketing",
        plan: str = "default@v1",
        delivery: str | None = None,
    ) -> int:
        claim = Claim(
            journey_id=f"order-{uuid.uuid4().hex[:8]}",
            step=step,
            iteration=0,
            channel="sms" if delivery else "email",
            template=step,
            recipient="jane@example.test",
            plan=plan,
            category=category,
            customer_id=self.customer,
        )
        entry = await self.ledger.claim(claim)
        provider_id = f"SM{uuid.uuid4().hex}"
        await self.ledger.mark_sent(claim.key, provider_message_id=provider_id, sent_at=at)
        if delivery:
            await self.ledger.record_delivery_status(provider_id, delivery, None, at + HOUR)
        return entry.message_id

    async def held_out(self) -> int:
        claim = Claim(
            journey_id=f"order-{uuid.uuid4().hex[:8]}",
            step="review_request",
            iteration=0,
            channel="email",
            template="review_request",
            recipient="jane@example.test",
            plan="default@v1",
            category="marketing",
            customer_id=self.customer,
            experiment="review-subject",
            variant="holdout",
        )
        entry = await self.ledger.claim(claim)
        await self.ledger.mark_skipped(claim.key, "holdout: holdout of experiment review-subject")
        return entry.message_id

    async def click(self, message_id: int, at: datetime, *, automated: bool = False) -> None:
        await record_engagement(
            self.sessions,
            message_id=message_id,
            kind="clicked",
            occurred_at=at,
            automated=automated,
            detail="review",
        )

    def purchase(self, order_id: str | None = None, placed: datetime = PLACED) -> Purchase:
        return Purchase(
            order_id=order_id or f"ORD-{uuid.uuid4().hex[:8]}",
            customer_id=self.customer,
            revenue_minor=4599,
            currency="EUR",
            placed_at=placed,
        )


@pytest.fixture
def messages(db_sessions: async_sessionmaker[AsyncSession]) -> Messages:
    return Messages(db_sessions)


@pytest.fixture
def attribution(db_sessions: async_sessionmaker[AsyncSession]) -> ConversionAttribution:
    return ConversionAttribution(db_sessions)


async def test_a_click_within_the_window_wins_over_a_later_delivery(
    messages: Messages, attribution: ConversionAttribution
) -> None:
    clicked = await messages.sent("cross_sell", PLACED - 6 * DAY)
    await messages.click(clicked, PLACED - 5 * DAY)
    await messages.sent("thank_you", PLACED - 2 * HOUR, category="relationship")

    credit = await attribution.attribute(messages.purchase("ORD-1" + messages.customer))

    assert credit is not None
    assert (credit.message_id, credit.attributed_by) == (clicked, "click")
    async with messages.sessions() as session:
        row = (await session.execute(select(Conversion))).scalars().one()
    assert (row.revenue_minor, row.currency, row.customer_id) == (4599, "EUR", messages.customer)


async def test_without_a_click_the_last_delivery_within_a_day_counts(
    messages: Messages, attribution: ConversionAttribution
) -> None:
    await messages.sent("product_education", PLACED - 20 * HOUR, category="relationship")
    latest = await messages.sent("cross_sell", PLACED - 3 * HOUR)
    await messages.sent("order_confirmation", PLACED - HOUR, category="transactional")

    credit = await attribution.attribute(messages.purchase())

    assert credit is not None
    assert (credit.message_id, credit.attributed_by) == (latest, "delivery")


async def test_nothing_is_credited_outside_the_windows(
    messages: Messages, attribution: ConversionAttribution
) -> None:
    old = await messages.sent("cross_sell", PLACED - 10 * DAY)
    await messages.click(old, PLACED - 8 * DAY)  # a day past the click window
    await messages.sent("thank_you", PLACED - 25 * HOUR, category="relationship")
    scanned = await messages.sent("review_request", PLACED - 2 * DAY)
    await messages.click(scanned, PLACED - 2 * DAY, automated=True)  # a scanner's
    # Delivered too early and a text never delivered: neither counts.
    await messages.sent("thank_you", PLACED - 2 * HOUR, category="relationship", delivery="failed")

    assert await attribution.attribute(messages.purchase()) is None


async def test_one_conversion_per_order(
    messages: Messages, attribution: ConversionAttribution
) -> None:
    first = await messages.sent("cross_sell", PLACED - 3 * HOUR)
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    credit = await attribution.attribute(messages.purchase(order_id))
    # A later message, then the same order again (a retried StartJourney).
    await messages.sent("review_request", PLACED - HOUR)
    again = await attribution.attribute(messages.purchase(order_id))

    assert credit is not None
    assert again == credit
    assert credit.message_id == first
    async with messages.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Conversion).where(Conversion.order_id == order_id)
        )
    assert count == 1


async def test_a_holdout_row_is_credited_within_the_click_window(
    messages: Messages, attribution: ConversionAttribution
) -> None:
    held = await messages.held_out()

    credit = await attribution.attribute(messages.purchase(placed=datetime.now(UTC) + 2 * DAY))
    late = await attribution.attribute(messages.purchase(placed=datetime.now(UTC) + 9 * DAY))

    assert credit is not None
    assert (credit.message_id, credit.attributed_by) == (held, "holdout")
    assert late is None


async def test_the_plans_own_windows_apply(
    messages: Messages, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    plan = Plan(
        id="short",
        version=1,
        description="short windows",
        steps=(),
        attribution=Attribution(click_window=2 * DAY, delivery_window=HOUR),
    )
    windows = windows_from_plans({"short": PinnedPlan(plan=plan, content_hash="x")})
    attribution = ConversionAttribution(db_sessions, windows)
    clicked = await messages.sent("cross_sell", PLACED - 4 * DAY, plan="short@v1")
    await messages.click(clicked, PLACED - 3 * DAY)  # inside 7 days, outside this plan's 2
    await messages.sent("thank_you", PLACED - 2 * HOUR, category="relationship", plan="short@v1")

    assert await attribution.attribute(messages.purchase()) is None
    assert windows("default@v3") == Attribution()  # a plan not deployed: the defaults
