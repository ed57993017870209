"""Facts write outbox events only for the types some active subscription wants
(SQLite and PostgreSQL); a subscription is seen everywhere within DEMAND_SETTLE."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.event_demand import DEMAND_SETTLE
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.messaging.journey_events import record_journey_event
from engine.messaging.ledger import Claim, MessageLedger
from engine.platform.database.tables import JourneyEventRecord


async def types_in_outbox(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list(
            await session.scalars(select(JourneyEventRecord.type).order_by(JourneyEventRecord.id))
        )


async def send_one(ledger: MessageLedger) -> None:
    claim = Claim(
        journey_id=f"order-{uuid.uuid4().hex[:8]}",
        step="order_confirmation",
        iteration=0,
        channel="email",
        template="order_confirmation",
        recipient="jane@example.test",
    )
    await ledger.claim(claim)
    assert await ledger.mark_sent(claim.key, "<id@example.test>", datetime.now(UTC))


async def detractor(sessions: async_sessionmaker[AsyncSession]) -> bool:
    async with sessions() as session, session.begin():
        return await record_journey_event(
            session,
            event_id=f"detractor:{uuid.uuid4().hex}",
            journey_id="order-1",
            type="detractor",
            occurred_at=datetime.now(UTC),
            data={"score": 2},
        )


async def subscribe(
    sessions: async_sessionmaker[AsyncSession], event_types: list[str]
) -> EventSubscriptions:
    subscriptions = EventSubscriptions(sessions)
    await subscriptions.create(
        url="https://desk.example.test/hooks",
        event_types=event_types,
        include_personal_data=False,
        delivered_through=await subscriptions.latest_event_id(),
    )
    return subscriptions


async def test_without_subscriptions_a_send_writes_no_event(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await send_one(MessageLedger(db_sessions))
    assert not await detractor(db_sessions)
    assert await types_in_outbox(db_sessions) == []


async def test_only_the_types_a_subscription_wants_are_written(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await subscribe(db_sessions, ["detractor"])

    await send_one(MessageLedger(db_sessions))
    assert await detractor(db_sessions)

    assert await types_in_outbox(db_sessions) == ["detractor"]


async def test_a_new_subscription_is_seen_within_the_settling_time(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ledger = MessageLedger(db_sessions)
    await send_one(ledger)  # the process's copy now says: nobody subscribed
    await subscribe(db_sessions, [])

    await asyncio.sleep(DEMAND_SETTLE.total_seconds())
    await send_one(ledger)

    assert await types_in_outbox(db_sessions) == ["message.sent"]


async def test_a_removed_subscription_stops_the_writes_it_asked_for(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    subscriptions = await subscribe(db_sessions, ["message.sent"])
    ledger = MessageLedger(db_sessions)
    await send_one(ledger)
    [only] = await subscriptions.active()
    assert await subscriptions.remove(only.id)

    await asyncio.sleep(DEMAND_SETTLE.total_seconds())
    await send_one(ledger)

    assert await types_in_outbox(db_sessions) == ["message.sent"]


async def test_writers_in_and_out_of_a_transaction_never_wait_on_each_other(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """SQLite's pool has one connection. A writer whose transaction already holds it
    asks for the copy; another asks before its first statement, so its reading must
    take that connection: if either waited on the other for the copy, neither would
    finish (the test's deadline turns that into a failure)."""
    await subscribe(db_sessions, [])
    await asyncio.sleep(DEMAND_SETTLE.total_seconds())  # every copy is old now

    async def holding_the_connection_first(number: int) -> None:
        async with db_sessions() as session, session.begin():
            await session.execute(select(JourneyEventRecord.id).limit(1))
            await record_journey_event(
                session,
                event_id=f"detractor:held-{number}-{uuid.uuid4().hex}",
                journey_id="order-1",
                type="detractor",
                occurred_at=datetime.now(UTC),
                data={"score": 1},
            )

    async def asking_first(number: int) -> None:
        async with db_sessions() as session, session.begin():
            await record_journey_event(
                session,
                event_id=f"detractor:first-{number}-{uuid.uuid4().hex}",
                journey_id="order-1",
                type="detractor",
                occurred_at=datetime.now(UTC),
                data={"score": 1},
            )

    writers = [
        writer(number)
        for number in range(10)
        for writer in (holding_the_connection_first, asking_first)
    ]
    await asyncio.wait_for(asyncio.gather(*writers), timeout=60)

    assert await types_in_outbox(db_sessions) == ["detractor"] * 20
