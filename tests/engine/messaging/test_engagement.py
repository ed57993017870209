"""The engagement table (SQLite and PostgreSQL): outcomes once per message, clicks
every time, unknown kinds refused, Twilio's final reports recorded through it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.engagement import record_engagement
from engine.messaging.ledger import Claim, MessageLedger
from engine.platform.database.tables import EngagementEvent


async def a_message(ledger: MessageLedger) -> int:
    claim = Claim(
        journey_id=f"order-{uuid.uuid4().hex[:8]}",
        step="shipping_notice",
        iteration=0,
        channel="sms",
        template="shipping_notice",
        recipient="+15005550006",
    )
    entry = await ledger.claim(claim)
    assert entry.message_id > 0
    return entry.message_id


async def kinds(sessions: async_sessionmaker[AsyncSession], message_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(EngagementEvent.kind)
            .where(EngagementEvent.message_id == message_id)
            .order_by(EngagementEvent.id)
        )
        return list(rows)


async def test_outcomes_are_recorded_once_clicks_every_time(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    message = await a_message(MessageLedger(db_sessions))
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    written = [
        await record_engagement(db_sessions, message_id=message, kind="delivered", occurred_at=at),
        await record_engagement(db_sessions, message_id=message, kind="delivered", occurred_at=at),
        await record_engagement(db_sessions, message_id=message, kind="clicked", detail="order"),
        await record_engagement(db_sessions, message_id=message, kind="clicked", detail="order"),
    ]

    assert written == [True, False, True, True]
    assert await kinds(db_sessions, message) == ["delivered", "clicked", "clicked"]


async def test_an_unknown_kind_is_refused(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    message = await a_message(MessageLedger(db_sessions))
    with pytest.raises(ValueError, match="unknown engagement kind"):
        await record_engagement(db_sessions, message_id=message, kind="liked")
    assert await kinds(db_sessions, message) == []
