"""Conversions: which message a customer's purchase is credited to.

**The rule** (docs/journeys-and-plans.md#attribution). A purchase (a journey started
for a new order, or a ``reordered`` event) is credited to one message of the same
customer sent before it:

1. the message whose tracked link the customer clicked last (a person's click, not
   a scanner's: ``automated`` clicks never count) within its plan's
   ``attribution.click_window`` (7 days by default) before the purchase; else
2. the message delivered last within its plan's ``attribution.delivery_window``
   (1 day by default) before the purchase (for email, when the mail server took it;
   for texts, Twilio's delivery report when one came; a text reported undelivered
   or failed, or an email that bounced, is not delivered); else
3. the holdout row of an experiment the customer was held out of, within the click
   window (``attributed_by`` ``holdout``): the holdout received nothing to click,
   so the longest window any treated customer could be credited in is theirs, and
   the report can compare arms.

Only messages meant to bring the customer back count (relationship, feedback and
marketing): an order confirmation does not earn the next order. Each order is
credited once (``conversions.order_id`` is unique; the first attribution stands).
Revenue is the order's total in minor units and its currency; for a ``reordered``
event, the reordered items' prices from the order it names (every item when it
names none).

Attribution runs in the API beside ``StartJourney`` and ``RecordEvent``, in the
background (:meth:`ConversionAttribution.later`: the call answers without waiting for
it), bounded (:data:`ATTRIBUTION_BUDGET`) and with every error logged, never raised: a
slow or broken attribution must not cost a journey.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.insights.conversion_events import record_conversion_event
from engine.platform.database.tables import (
    Conversion,
    EngagementEvent,
    EngagementKind,
    Message,
    MessageStatus,
)
from engine.platform.database.timestamps import as_utc
from engine.platform.logging import get_logger
from workflows.orders import Order, OrderEvent
from workflows.plans.model import HOLDOUT_VARIANT, Attribution, Category, PinnedPlan

log = get_logger(__name__)

ATTRIBUTION_BUDGET = timedelta(seconds=2)
# How far back any plan's window may reach (experiment_rules.MAX_ATTRIBUTION_WINDOW),
# and how many recent messages of a customer are looked at.
LOOKBACK = timedelta(days=90)
MAX_CANDIDATES = 200
CREDITED_CATEGORIES = (Category.RELATIONSHIP, Category.FEEDBACK, Category.MARKETING)
NOT_DELIVERED = frozenset({"undelivered", "failed", "canceled"})
NO_CURRENCY = "XXX"  # ISO 4217: no currency (a reorder whose prices are unknown)


class AttributedBy:
    CLICK = "click"
    DELIVERY = "delivery"
    HOLDOUT = "holdout"


@dataclass(frozen=True)
class Purchase:
    order_id: str
    customer_id: str
    revenue_minor: int
    currency: str
    placed_at: datetime

    @classmethod
    def of_order(cls, order: Order) -> Purchase:
        return cls(
            order_id=order.order_id,
            customer_id=order.customer.id,
            revenue_minor=order.total_minor,
            currency=order.currency,
            placed_at=order.placed_at,
        )


@dataclass(frozen=True)
class Credit:
    """A conversion as recorded."""

    order_id: str
    message_id: int
    attributed_by: str


@dataclass(frozen=True)
class _Candidate:
    message_id: int
    plan: str | None
    at: datetime
    by: str


WindowsOf = Callable[[str | None], Attribution]


def windows_from_plans(plans: Mapping[str, PinnedPlan]) -> WindowsOf:
    """The windows of a ledger plan label ("default@v2") from the deployment's plans,
    by plan id (a label of a plan no longer deployed gets the defaults)."""

    def windows(label: str | None) -> Attribution:
        plan_id = (label or "").split("@", 1)[0]
        pinned = plans.get(plan_id)
        return pinned.plan.attribution if pinned is not None else Attribution()

    return windows


class ConversionAttribution:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        windows: WindowsOf | None = None,
        *,
        budget: timedelta = ATTRIBUTION_BUDGET,
    ) -> None:
        self._sessions = sessions
        self._windows = windows or (lambda _label: Attribution())
        self._budget = budget.total_seconds()
        # Attributions under way in the background (kept so they are not collected).
        self._pending: set[asyncio.Task[Credit | None]] = set()

    def later(self, work: Coroutine[Any, Any, Credit | None]) -> None:
        """Run ``work`` (``order_placed(...)``, ``reordered(...)``: bounded, never
        raising) in the background, so the API call that caused it need not wait."""
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settled(self) -> None:
        """Wait for the attributions under way (tests; a stopping API)."""
        while self._pending:
            await asyncio.gather(*self._pending)

    async def order_placed(self, order: Order) -> Credit | None:
        """A journey started for ``order``: credit it (bounded; never raises)."""
        return await self._bounded(Purchase.of_order(order))

    async def reordered(
        self, journey_id: str, event: OrderEvent, order: Order | None
    ) -> Credit | None:
        """A ``reordered`` event reached journey ``journey_id`` (bounded; never raises).
        The purchase is ``reorder:<event id>``, the customer the journey's."""

        async def purchase() -> Purchase | None:
            customer_id = order.customer.id if order is not None else None
            if customer_id is None:
                customer_id = await self._customer_of(journey_id)
            if customer_id is None:
                return None
            revenue, currency = _reorder_value(order, event.skus)
            return Purchase(
                order_id=f"reorder:{event.event_id}"[:128],
                customer_id=customer_id,
                revenue_minor=revenue,
                currency=currency,
                placed_at=event.occurred_at,
            )

        try:
            async with asyncio.timeout(self._budget):
                found = await purchase()
        except Exception:
            log.exception("reorder attribution failed", journey_id=journey_id)
            return None
        return await self._bounded(found) if found is not None else None

    async def attribute(self, purchase: Purchase) -> Credit | None:
        """Credit ``purchase`` to a message by the rule above, once per order; the
        credit (a new one, or the order's earlier one), or None when no message
        qualifies. Raises what the database raises."""
        async with self._sessions() as session:
            earlier = (
                await session.execute(
                    select(Conversion.message_id, Conversion.attributed_by).where(
                        Conversion.order_id == purchase.order_id
                    )
                )
            ).first()
            if earlier is not None:
                return Credit(purchase.order_id, earlier.message_id, earlier.attributed_by)
            chosen = await self._choose(session, purchase)
        if chosen is None:
            return None
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    insert(Conversion).values(
                        order_id=purchase.order_id,
                        message_id=chosen.message_id,
                        customer_id=purchase.customer_id,
                        revenue_minor=purchase.revenue_minor,
                        currency=purchase.currency[:3],
                        attributed_by=chosen.by,
                        occurred_at=as_utc(purchase.placed_at),
                    )
                )
                await record_conversion_event(
                    session,
                    order_id=purchase.order_id,
                    message_id=chosen.message_id,
                    attributed_by=chosen.by,
                    revenue_minor=purchase.revenue_minor,
                    currency=purchase.currency[:3],
                    at=as_utc(purchase.placed_at),
                )
        except IntegrityError:
            # The same order credited meanwhile (a retried StartJourney): theirs stands.
            return await self.attribute(purchase)
        log.info("conversion attributed", order_id=purchase.order_id, by=chosen.by)
        return Credit(purchase.order_id, chosen.message_id, chosen.by)

    async def _bounded(self, purchase: Purchase) -> Credit | None:
        try:
            async with asyncio.timeout(self._budget):
                return await self.attribute(purchase)
        except Exception:  # TimeoutError included: the journey matters more
            log.exception("attribution failed", order_id=purchase.order_id)
            return None

    async def _customer_of(self, journey_id: str) -> str | None:
        async with self._sessions() as session:
            found = await session.scalar(
                select(Message.customer_id)
                .where(Message.journey_id == journey_id, Message.customer_id.is_not(None))
                .limit(1)
            )
            return found

    async def _choose(self, session: AsyncSession, purchase: Purchase) -> _Candidate | None:
        placed = as_utc(purchase.placed_at)
        earliest = placed - LOOKBACK
        customer = Message.customer_id == purchase.customer_id
        credited = Message.category.in_([c.value for c in CREDITED_CATEGORIES])
        clicks = await session.execute(
            select(EngagementEvent.message_id, EngagementEvent.occurred_at, Message.plan)
            .join(Message, Message.id == EngagementEvent.message_id)
            .where(
                customer,
                credited,
                EngagementEvent.kind == EngagementKind.CLICKED,
                EngagementEvent.automated.is_(False),
                EngagementEvent.occurred_at <= placed,
                EngagementEvent.occurred_at >= earliest,
            )
            .order_by(EngagementEvent.occurred_at.desc())
            .limit(MAX_CANDIDATES)
        )
        for click in clicks:
            at = as_utc(click.occurred_at)
            if placed - at <= self._windows(click.plan).click_window:
                return _Candidate(click.message_id, click.plan, at, AttributedBy.CLICK)
        bounced = (
            select(EngagementEvent.message_id)
            .where(EngagementEvent.kind == EngagementKind.BOUNCED)
            .scalar_subquery()
        )
        sent = await session.execute(
            select(
                Message.id,
                Message.plan,
                Message.sent_at,
                Message.delivery_status,
                Message.delivery_updated_at,
            )
            .where(
                customer,
                credited,
                Message.status == MessageStatus.SENT,
                Message.sent_at <= placed,
                Message.sent_at >= earliest,
                Message.id.not_in(bounced),
            )
            .order_by(Message.sent_at.desc())
            .limit(MAX_CANDIDATES)
        )
        delivered: list[_Candidate] = []
        for row in sent:
            if row.delivery_status in NOT_DELIVERED or row.sent_at is None:
                continue
            at = as_utc(row.sent_at)
            if row.delivery_status in ("delivered", "read") and row.delivery_updated_at:
                at = min(as_utc(row.delivery_updated_at), placed)
            if placed - at <= self._windows(row.plan).delivery_window:
                delivered.append(_Candidate(row.id, row.plan, at, AttributedBy.DELIVERY))
        if delivered:
            return max(delivered, key=lambda candidate: candidate.at)
        held = await session.execute(
            select(Message.id, Message.plan, Message.created_at)
            .where(
                customer,
                Message.variant == HOLDOUT_VARIANT,
                Message.status == MessageStatus.SKIPPED,
                Message.created_at <= placed,
                Message.created_at >= earliest,
            )
            .order_by(Message.created_at.desc())
            .limit(MAX_CANDIDATES)
        )
        for hold in held:
            at = as_utc(hold.created_at)
            if placed - at <= self._windows(hold.plan).click_window:
                return _Candidate(hold.id, hold.plan, at, AttributedBy.HOLDOUT)
        return None


def _reorder_value(order: Order | None, skus: list[str]) -> tuple[int, str]:
    if order is None:
        return 0, NO_CURRENCY
    wanted = set(skus)
    items = [item for item in order.items if not wanted or item.sku in wanted]
    return sum(item.unit_price_minor * item.quantity for item in items), order.currency
