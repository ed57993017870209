"""The journey event outbox (SQLite and PostgreSQL): facts write their events in
their own transaction, once per fact; personal data only in ``personal``; the
reader stops at a gap in ids that may still fill and passes one that has settled."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.insights.attribution import ConversionAttribution, Purchase
from engine.messaging.engagement import record_engagement
from engine.messaging.event_subscriptions import GAP_SETTLE, EventSubscriptions
from engine.messaging.journey_events import record_journey_event
from engine.messaging.ledger import Claim, MessageLedger
from engine.platform.database.tables import JourneyEventRecord


@pytest.fixture(autouse=True)
async def subscribed(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    """A subscription to every type: without one, nothing is written (see
    test_event_demand.py)."""
    await EventSubscriptions(db_sessions).create(
        url="https://crm.example.test/hooks",
        event_types=[],
        include_personal_data=False,
        delivered_through=0,
    )


async def outbox(sessions: async_sessionmaker[AsyncSession]) -> list[JourneyEventRecord]:
    async with sessions() as session:
        return list(
            await session.scalars(select(JourneyEventRecord).order_by(JourneyEventRecord.id))
        )


async def a_claim(ledger: MessageLedger, channel: str = "email") -> tuple[str, int]:
    journey = f"order-{uuid.uuid4().hex[:8]}"
    entry = await ledger.claim(
        Claim(
            journey_id=journey,
            step="order_confirmation",
            iteration=0,
            channel=channel,
            template="order_confirmation",
            recipient="jane@example.test",
        )
    )
    return entry.key, entry.message_id


async def test_a_sent_message_writes_one_event_without_its_recipient_in_the_data(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ledger = MessageLedger(db_sessions)
    key, _ = await a_claim(ledger)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    assert await ledger.mark_sent(key, "<id@example.test>", at)
    assert not await ledger.mark_sent(key, "<id@example.test>", at)  # settled: no second event

    [event] = await outbox(db_sessions)
    assert (event.event_id, event.type) == (f"message.sent:{key}", "message.sent")
    data = json.loads(event.data)
    assert data["step"] == "order_confirmation"
    assert data["channel"] == "email"
    assert "jane@example.test" not in event.data
    assert json.loads(event.personal or "{}") == {"recipient": "jane@example.test"}


async def test_a_failed_message_and_a_skipped_one(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ledger = MessageLedger(db_sessions)
    failed, _ = await a_claim(ledger)
    skipped, _ = await a_claim(ledger)

    await ledger.mark_failed(failed, "550 mailbox jane@example.test unknown")
    await ledger.mark_skipped(skipped, "suppressed")

    [event] = await outbox(db_sessions)
    assert event.type == "message.failed"
    assert "jane@example.test" not in event.data
    assert "550 mailbox" in (event.personal or "")


async def test_delivered_once_per_message_and_every_click(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    key, message = await a_claim(MessageLedger(db_sessions), channel="sms")

    await record_engagement(db_sessions, message_id=message, kind="delivered")
    await record_engagement(db_sessions, message_id=message, kind="delivered")
    await record_engagement(db_sessions, message_id=message, kind="clicked", automated=True)
    await record_engagement(db_sessions, message_id=message, kind="clicked")
    await record_engagement(db_sessions, message_id=message, kind="opened")

    events = await outbox(db_sessions)
    assert [e.type for e in events] == ["message.delivered", "message.clicked", "message.clicked"]
    assert events[0].event_id == f"message.delivered:{key}"
    assert [json.loads(e.data)["automated"] for e in events[1:]] == [True, False]
    assert len({e.event_id for e in events}) == 3


async def test_the_same_event_id_is_kept_once_and_unknown_types_are_refused(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    at = datetime.now(UTC)
    written = []
    for _ in range(2):
        async with db_sessions() as session, session.begin():
            written.append(
                await record_journey_event(
                    session,
                    event_id="journey.started:order-1",
                    journey_id="order-1",
                    type="journey.started",
                    occurred_at=at,
                    data={"order_id": "1"},
                )
            )
    assert written == [True, False]
    async with db_sessions() as session:
        with pytest.raises(ValueError, match="unknown journey event type"):
            await record_journey_event(
                session,
                event_id="x",
                journey_id="order-1",
                type="journey.exploded",
                occurred_at=at,
                data={},
            )


async def write_events(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    async with sessions() as session, session.begin():
        for number in range(count):
            await record_journey_event(
                session,
                event_id=f"conversion:order-{uuid.uuid4().hex}-{number}",
                journey_id="order-1",
                type="conversion",
                occurred_at=datetime.now(UTC),
                data={"n": number},
            )


async def test_the_reader_waits_at_a_fresh_gap_and_passes_a_settled_one(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await write_events(db_sessions, 4)
    rows = await outbox(db_sessions)
    first = rows[0].id
    # A gap: the second event as if its transaction had not committed (or rolled back).
    async with db_sessions() as session, session.begin():
        await session.execute(delete(JourneyEventRecord).where(JourneyEventRecord.id == rows[1].id))
    reader = EventSubscriptions(db_sessions)

    fresh = await reader.ready_events(first - 1, 100)
    assert [e.id for e in fresh] == [first]

    long_ago = datetime.now(UTC) - GAP_SETTLE - timedelta(seconds=1)
    async with db_sessions() as session, session.begin():
        await session.execute(update(JourneyEventRecord).values(recorded_at=long_ago))
    settled = await reader.ready_events(first, 100)
    assert [e.id for e in settled] == [rows[2].id, rows[3].id]
    assert [e.data["n"] for e in settled] == [2, 3]


async def test_erasure_drops_the_personal_data_of_the_journeys_events(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ledger = MessageLedger(db_sessions)
    erased, _ = await a_claim(ledger)
    kept, _ = await a_claim(ledger)
    for key in (erased, kept):
        await ledger.mark_sent(key, "<id@example.test>", datetime.now(UTC))

    await ledger.anonymise_recipients([erased.split("/")[0]], lambda text: "hashed")

    personal = {event.event_id: event.personal for event in await outbox(db_sessions)}
    assert personal[f"message.sent:{erased}"] is None
    assert "jane@example.test" in (personal[f"message.sent:{kept}"] or "")


async def test_a_credited_purchase_writes_one_conversion_on_the_messages_journey(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ledger = MessageLedger(db_sessions)
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    claim = Claim(
        journey_id=f"order-{uuid.uuid4().hex[:8]}",
        step="cross_sell",
        iteration=0,
        channel="email",
        template="cross_sell",
        recipient="jane@example.test",
        plan="default@v1",
        category="marketing",
        customer_id=customer,
    )
    await ledger.claim(claim)
    placed = datetime.now(UTC) + timedelta(days=1)
    await ledger.mark_sent(claim.key, "<id@example.test>", placed - timedelta(hours=2))
    purchase = Purchase(
        order_id=f"ORD-{uuid.uuid4().hex[:8]}",
        customer_id=customer,
        revenue_minor=4599,
        currency="EUR",
        placed_at=placed,
    )
    attribution = ConversionAttribution(db_sessions)

    assert await attribution.attribute(purchase) is not None
    assert await attribution.attribute(purchase) is not None  # a retried StartJourney

    conversions = [e for e in await outbox(db_sessions) if e.type == "conversion"]
    assert [(e.event_id, e.journey_id) for e in conversions] == [
        (f"conversion:{purchase.order_id}", claim.journey_id)
    ]
    data = json.loads(conversions[0].data)
    assert (data["revenue_minor"], data["currency"], data["attributed_by"]) == (
        4599,
        "EUR",
        "delivery",
    )
