"""Engagement: what became of a sent message, recorded in one place.

Every outcome of a ledger message lands in ``engagement_events`` through
:func:`record_engagement`: the provider's delivery reports (Twilio's status
callbacks), bounces and complaints, clicks on tracked links and (when enabled)
opens. The report reads that table; nothing else writes it.

``kind`` is one of :class:`~engine.platform.database.tables.EngagementKind`. The
outcomes a message has at most once (delivered, undelivered, failed, bounced,
unsubscribed, complained) are recorded once per message: a provider's repeated
callback or a second bounce notice adds nothing. Clicks and opens are recorded
every time (the report counts people and clicks apart); ``automated`` marks those
most likely made by a machine (a mail scanner, a privacy proxy), which the report
keeps out of its counts.

``detail`` must hold no personal data: a link's name, a provider's error code.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.engagement_events import record_engagement_event
from engine.platform.database.tables import EngagementEvent, EngagementKind, Message, MessageStatus

# A message has each of these at most once.
ONCE_PER_MESSAGE = frozenset(
    {
        EngagementKind.DELIVERED,
        EngagementKind.UNDELIVERED,
        EngagementKind.FAILED,
        EngagementKind.BOUNCED,
        EngagementKind.UNSUBSCRIBED,
        EngagementKind.COMPLAINED,
    }
)
KNOWN_KINDS = ONCE_PER_MESSAGE | {EngagementKind.OPENED, EngagementKind.CLICKED}
MAX_DETAIL_LENGTH = 200

# Twilio's final message statuses, as engagement kinds.
TWILIO_OUTCOMES: dict[str, str] = {
    "delivered": EngagementKind.DELIVERED,
    "read": EngagementKind.DELIVERED,  # WhatsApp: read implies delivered
    "undelivered": EngagementKind.UNDELIVERED,
    "failed": EngagementKind.FAILED,
}


async def record_engagement(
    sessions: async_sessionmaker[AsyncSession],
    *,
    message_id: int,
    kind: str,
    occurred_at: datetime | None = None,
    automated: bool = False,
    detail: str | None = None,
) -> bool:
    """Record that ``kind`` happened to the ledger message ``message_id`` (the
    ``messages`` row's id) at ``occurred_at`` (now when None).

    Returns whether a row was written: False for a once-per-message outcome the
    message already has. Raises ValueError for an unknown ``kind``. The caller
    must know the message exists (the foreign key refuses others).
    """
    if kind not in KNOWN_KINDS:
        raise ValueError(f"unknown engagement kind {kind!r}")
    at = (occurred_at or datetime.now(UTC)).astimezone(UTC)
    values = {
        "message_id": message_id,
        "kind": kind,
        "automated": automated,
        "detail": detail[:MAX_DETAIL_LENGTH] if detail else None,
        "occurred_at": at,
    }
    async with sessions() as session, session.begin():
        if kind in ONCE_PER_MESSAGE:
            existing = await session.execute(
                select(EngagementEvent.id)
                .where(EngagementEvent.message_id == message_id, EngagementEvent.kind == kind)
                .limit(1)
            )
            if existing.first() is not None:
                return False
        row_id = await session.scalar(
            insert(EngagementEvent).values(**values).returning(EngagementEvent.id)
        )
        await record_engagement_event(
            session, message_id=message_id, kind=kind, row_id=row_id, at=at, automated=automated
        )
    return True


async def record_unsubscribe(
    sessions: async_sessionmaker[AsyncSession], journey_id: str, *, channel: str = "email"
) -> bool:
    """An unsubscribe link of journey ``journey_id`` was used: the link names the
    journey, not the message, so the opt-out is credited to the journey's latest
    message sent on ``channel`` (the one the customer most likely read). False when
    the journey sent none there."""
    async with sessions() as session:
        message_id = await session.scalar(
            select(Message.id)
            .where(
                Message.journey_id == journey_id,
                Message.channel == channel,
                Message.status == MessageStatus.SENT,
            )
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        )
    if message_id is None:
        return False
    return await record_engagement(
        sessions, message_id=message_id, kind=EngagementKind.UNSUBSCRIBED
    )
