"""A journey's own events for outbound subscribers, in virtual time: each stage change
and the end, once each, in order, with the real worker and its SQLite outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowFailureError

from engine.devstack.mail_sink import MailSink
from engine.messaging.event_demand import DEMAND_SETTLE
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import JourneyEventRecord
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved, virtual_journeys
from workflows.order_journey import OrderJourney
from workflows.vocabulary import EventType

DAY = timedelta(days=1)
TZ = "Europe/Berlin"


@pytest.fixture(scope="module")
async def journeys(
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[VirtualJourneys]:
    """Journeys with a CRM subscribed to stage changes and ends only."""
    async with virtual_journeys(tmp_path_factory.mktemp("outbound"), mail_sink) as running:
        engine = create_engine(running.settings.resolved_database_url)
        try:
            subscriptions = EventSubscriptions(create_session_factory(engine))
            await subscriptions.create(
                url="https://crm.example.test/hooks",
                event_types=["stage.changed", "journey.ended"],
                include_personal_data=False,
                delivered_through=0,
            )
        finally:
            await engine.dispose()
        await asyncio.sleep(DEMAND_SETTLE.total_seconds())
        yield running


async def events_of(journeys: VirtualJourneys, journey_id: str) -> list[JourneyEventRecord]:
    engine = create_engine(journeys.settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list(
                await session.scalars(
                    select(JourneyEventRecord)
                    .where(JourneyEventRecord.journey_id == journey_id)
                    .order_by(JourneyEventRecord.id)
                )
            )
    finally:
        await engine.dispose()


async def test_every_stage_change_and_the_end_are_recorded_once_in_order(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("09:00", TZ)
    order = domain_order()
    handle = await journeys.start(order)
    await journeys.until(handle, resolved("order_confirmation"))
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED)
    await journeys.until(handle, resolved("shipping_notice"))
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.CANCELLED)
    final = await handle.result()

    events = await events_of(journeys, handle.id)
    types = [event.type for event in events]
    # Sends, deliveries and the rest were not asked for: not written.
    assert set(types) == {"stage.changed", "journey.ended"}
    assert types[-1] == "journey.ended"
    assert types.count("journey.ended") == 1
    moves = [
        (json.loads(event.data)["from"], json.loads(event.data)["to"])
        for event in events
        if event.type == "stage.changed"
    ]
    assert moves == [("ordered", "shipped"), ("shipped", "order_cancelled")]
    ended = json.loads(events[-1].data)
    assert ended["stage"] == "order_cancelled" == final.stage
    assert ended["messages_sent"] == str(sum(1 for m in final.sent if m.status == "sent"))
    assert ended["order_id"] == order.order_id
    assert ended["plan"] == f"{final.plan_id}@v{final.plan_version}"
    assert [e.event_id for e in events[:2]] == [
        f"stage.changed:{handle.id}:1",
        f"stage.changed:{handle.id}:2",
    ]
    assert final.unreported == []
    # No personal data: the customer's address never rides along.
    assert all(order.customer.email not in event.data and not event.personal for event in events)


async def test_an_operator_cancel_reports_the_end_as_stopped(journeys: VirtualJourneys) -> None:
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.until(handle, resolved("order_confirmation"))

    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    events = await events_of(journeys, handle.id)
    assert [(e.type, json.loads(e.data).get("to")) for e in events] == [
        ("stage.changed", "stopped"),
        ("journey.ended", None),
    ]
    ended = json.loads(events[-1].data)
    assert (ended["stage"], ended["reason"]) == ("stopped", "cancelled")
    stopped = await handle.query(OrderJourney.state)
    assert stopped.unreported == []
