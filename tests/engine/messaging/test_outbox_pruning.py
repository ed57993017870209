"""The outbox is pruned behind the slowest active subscription (SQLite and
PostgreSQL), never of its newest row, so ids keep growing past every cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.event_subscriptions import EventSubscriptions, Subscription
from engine.messaging.journey_events import record_journey_event
from engine.platform.database.tables import JourneyEventRecord


async def ids_in_outbox(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as session:
        return list(
            await session.scalars(select(JourneyEventRecord.id).order_by(JourneyEventRecord.id))
        )


async def write(sessions: async_sessionmaker[AsyncSession], count: int) -> list[int]:
    async with sessions() as session, session.begin():
        for _ in range(count):
            assert await record_journey_event(
                session,
                event_id=f"conversion:{uuid.uuid4().hex}",
                journey_id="order-1",
                type="conversion",
                occurred_at=datetime.now(UTC),
                data={"order_id": "1"},
            )
    return (await ids_in_outbox(sessions))[-count:]


@pytest.fixture
def subscriptions(db_sessions: async_sessionmaker[AsyncSession]) -> EventSubscriptions:
    return EventSubscriptions(db_sessions)


async def new_subscription(subscriptions: EventSubscriptions) -> Subscription:
    return await subscriptions.create(
        url="https://crm.example.test/hooks",
        event_types=[],
        include_personal_data=False,
        delivered_through=await subscriptions.latest_event_id(),
    )


async def test_rows_stay_until_every_active_subscription_passed_them(
    db_sessions: async_sessionmaker[AsyncSession], subscriptions: EventSubscriptions
) -> None:
    crm = await new_subscription(subscriptions)
    desk = await new_subscription(subscriptions)
    ids = await write(db_sessions, 5)

    await subscriptions.advance(crm.id, ids[4])
    assert await ids_in_outbox(db_sessions) == ids  # the desk has read none

    await subscriptions.advance(desk.id, ids[2])
    assert await ids_in_outbox(db_sessions) == ids[3:]

    await subscriptions.advance(desk.id, ids[4])
    assert await ids_in_outbox(db_sessions) == ids[4:]  # the newest stays

    await subscriptions.advance(desk.id, ids[1])  # a late, older report moves nothing back
    assert (await subscriptions.get(desk.id)).delivered_through == ids[4]  # type: ignore[union-attr]


async def test_a_removed_subscription_holds_nothing_back_and_ids_keep_growing(
    db_sessions: async_sessionmaker[AsyncSession], subscriptions: EventSubscriptions
) -> None:
    crm = await new_subscription(subscriptions)
    desk = await new_subscription(subscriptions)
    ids = await write(db_sessions, 4)
    await subscriptions.advance(crm.id, ids[3])

    assert await subscriptions.remove(desk.id)
    assert await ids_in_outbox(db_sessions) == ids[3:]

    assert await subscriptions.remove(crm.id)
    assert await ids_in_outbox(db_sessions) == ids[3:]

    await new_subscription(subscriptions)
    [later] = await write(db_sessions, 1)
    assert later > ids[3]
