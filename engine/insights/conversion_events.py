"""The ``conversion`` journey event, written in the transaction that credits a
purchase to a message (on the journey of that message)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.messaging.event_demand import is_wanted
from engine.messaging.journey_events import CONVERSION, record_journey_event
from engine.platform.database.tables import Message


async def record_conversion_event(
    session: AsyncSession,
    *,
    order_id: str,
    message_id: int,
    attributed_by: str,
    revenue_minor: int,
    currency: str,
    at: datetime,
) -> None:
    if not await is_wanted(session, CONVERSION):
        return
    credited = (
        await session.execute(
            select(
                Message.journey_id, Message.idempotency_key, Message.step, Message.customer_id
            ).where(Message.id == message_id)
        )
    ).one()
    await record_journey_event(
        session,
        event_id=f"{CONVERSION}:{order_id}",
        journey_id=credited.journey_id,
        type=CONVERSION,
        occurred_at=at,
        data={
            "order_id": order_id,
            "message": credited.idempotency_key,
            "step": credited.step,
            "customer_id": credited.customer_id,
            "attributed_by": attributed_by,
            "revenue_minor": revenue_minor,
            "currency": currency,
        },
    )
