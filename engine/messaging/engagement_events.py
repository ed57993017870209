"""The journey events of an engagement row: ``message.delivered`` and
``message.clicked``, written in the transaction that records the engagement."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.messaging.event_demand import is_wanted
from engine.messaging.journey_events import (
    MESSAGE_CLICKED,
    MESSAGE_DELIVERED,
    record_journey_event,
)
from engine.platform.database.tables import EngagementKind, Message

_EVENT_OF_KIND = {
    EngagementKind.DELIVERED: MESSAGE_DELIVERED,
    EngagementKind.CLICKED: MESSAGE_CLICKED,
}


async def record_engagement_event(
    session: AsyncSession,
    *,
    message_id: int,
    kind: str,
    row_id: int | None,
    at: datetime,
    automated: bool,
) -> None:
    """Record the event of the engagement row ``row_id`` of ``kind`` (nothing for
    the kinds subscribers are not told of)."""
    event_type = _EVENT_OF_KIND.get(kind)
    if event_type is None or not await is_wanted(session, event_type):
        return
    row = (
        await session.execute(
            select(
                Message.journey_id,
                Message.step,
                Message.channel,
                Message.template,
                Message.idempotency_key,
                Message.customer_id,
            ).where(Message.id == message_id)
        )
    ).one()
    data = {
        "step": row.step,
        "channel": row.channel,
        "template": row.template,
        "customer_id": row.customer_id,
        "message": row.idempotency_key,
    }
    if event_type == MESSAGE_CLICKED:
        # A mail scanner or privacy proxy following links: receivers may skip these.
        data["automated"] = automated
        event_id = f"{event_type}:{row_id}"
    else:
        event_id = f"{event_type}:{row.idempotency_key}"
    await record_journey_event(
        session,
        event_id=event_id,
        journey_id=row.journey_id,
        type=event_type,
        occurred_at=at,
        data=data,
    )
