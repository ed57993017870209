"""The bus consumer against the real RabbitMQ and the real journey stack: messages
taken by journeys are acknowledged, bad ones dead-lettered with the reason."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aftercare.v1 import journey_pb2 as pb
from aio_pika.abc import AbstractIncomingMessage

from engine.cli.samples import sample_order, sample_shipment
from engine.integrations.bus.consumer import (
    FIELDS_HEADER,
    REASON_HEADER,
    REFUSAL_HEADER,
    Backoff,
    BusConsumer,
    ConsumerSettings,
)
from engine.integrations.bus.envelope import RECORD_EVENT, START_JOURNEY
from engine.integrations.intake import ConnectingIntake, JourneyIntake
from engine.journeys.directory import JourneyDirectory
from tests.conftest import Service
from tests.engine.integrations.bus_support import Broker, broker_queue
from tests.support.ids import new_order_id
from tests.support.waiting import eventually


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with broker_queue("consumer") as broker:
        yield broker


@pytest.fixture
async def consumer(service: Service, broker: Broker) -> AsyncIterator[BusConsumer]:
    intake = JourneyIntake(JourneyDirectory(service.temporal, service.settings.task_queue))
    settings = ConsumerSettings(
        queue=broker.queue,
        prefetch=4,
        no_journey_attempts=3,
        backoff=Backoff(first=0.05, most=0.2),
    )
    running = BusConsumer(broker.connection, intake, settings)
    await running.start()
    yield running
    await running.stop()


def shipped(order_id: str) -> pb.RecordEventRequest:
    return pb.RecordEventRequest(
        order_id=order_id,
        event=pb.OrderEvent(
            event_id=f"ship-{order_id}",
            type=pb.EVENT_TYPE_SHIPPED,
            shipment=sample_shipment(order_id),
        ),
    )


async def test_orders_and_events_from_the_bus_reach_their_journeys(
    service: Service, broker: Broker, consumer: BusConsumer
) -> None:
    order_ids = [new_order_id("BUS") for _ in range(5)]
    for index, order_id in enumerate(order_ids):
        await broker.publish(pb.StartJourneyRequest(order=sample_order(order_id, variant=index)))
    for order_id in order_ids:
        await broker.publish(shipped(order_id))
    # The same event again, as an at-least-once publisher may send it.
    await broker.publish(shipped(order_ids[0]))

    for order_id in order_ids:
        mails = await service.mails_for(f"order-{order_id}", 2)
        assert [m.message["X-Aftercare-Step"] for m in mails] == [
            "order_confirmation",
            "shipping_notice",
        ]
    await eventually(broker.waiting, lambda count: count == 0)
    assert await broker.dead_letters() == []
    journey = await eventually(
        lambda: service.client.get_journey(order_ids[0]),
        lambda j: any("duplicate event" in e.detail for e in j.timeline),
    )
    assert journey.stage == pb.JOURNEY_STAGE_SHIPPED


async def test_bad_messages_are_dead_lettered_with_the_reason(
    service: Service, broker: Broker, consumer: BusConsumer
) -> None:
    invalid = sample_order(new_order_id("BAD"))
    invalid.items[0].quantity = 0
    orphan = new_order_id("ORPHAN")
    await broker.publish_raw("aftercare.v1.Nonsense", b"{}")
    await broker.publish_raw(START_JOURNEY, b"{not json")
    await broker.publish_raw(RECORD_EVENT, json.dumps({"orderId": "A-1", "colour": 1}).encode())
    await broker.publish(pb.StartJourneyRequest(order=invalid))
    await broker.publish(shipped(orphan))  # no journey, and none comes

    letters: list[AbstractIncomingMessage] = []

    async def collected() -> int:
        letters.extend(await broker.dead_letters())
        return len(letters)

    await eventually(collected, lambda count: count >= 5, seconds=30)
    assert len(letters) == 5
    by_refusal: dict[str, list[dict[str, str]]] = {}
    for letter in letters:
        headers = {name: str(value) for name, value in letter.headers.items()}
        by_refusal.setdefault(str(headers[REFUSAL_HEADER]), []).append(headers)
    assert sorted((kind, len(found)) for kind, found in by_refusal.items()) == [
        ("invalid", 1),
        ("no_journey", 1),
        ("not_a_request", 3),
    ]
    [refused] = by_refusal["invalid"]
    assert "order.items[0].quantity" in str(refused[FIELDS_HEADER]).split(",")
    assert "quantity" in str(refused[REASON_HEADER])
    reasons = " | ".join(str(h[REASON_HEADER]) for h in by_refusal["not_a_request"])
    assert "type property" in reasons
    assert "colour" in reasons
    # Each letter carries the original body, to be fixed and published again.
    assert any(letter.body == b"{not json" for letter in letters)
    assert await broker.waiting() == 0


async def test_while_temporal_is_unreachable_nothing_is_acknowledged(
    service: Service, broker: Broker
) -> None:
    async def unreachable() -> JourneyDirectory:
        # What connecting to a Temporal that is down raises.
        raise ConnectionError("cannot reach Temporal at 127.0.0.1:1")

    settings = ConsumerSettings(queue=broker.queue, prefetch=2, backoff=Backoff(0.05, 0.1))
    blocked = BusConsumer(broker.connection, ConnectingIntake(unreachable), settings)
    await blocked.start()
    order_id = new_order_id("DOWN")
    await broker.publish(pb.StartJourneyRequest(order=sample_order(order_id)))
    # Delivered to the consumer, which keeps retrying it and does not acknowledge it.
    await eventually(broker.waiting, lambda count: count == 0)
    await blocked.stop()
    # Stopped unacknowledged: the broker has it again, for the next consumer.
    await eventually(broker.waiting, lambda count: count == 1)
    assert await broker.dead_letters() == []

    intake = JourneyIntake(JourneyDirectory(service.temporal, service.settings.task_queue))
    healthy = BusConsumer(broker.connection, intake, settings)
    await healthy.start()
    try:
        await service.mails_for(f"order-{order_id}", 1)
        await eventually(broker.waiting, lambda count: count == 0)
    finally:
        await healthy.stop()
