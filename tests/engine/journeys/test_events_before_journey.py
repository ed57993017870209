"""Events that outrun the order system: a delivery event carrying the order starts the
journey (signal-with-start); anything else for an unknown order is NOT_FOUND."""

from __future__ import annotations

import pytest
from aftercare.v1 import journey_pb2 as pb

from clients import InvalidRequestError, JourneyNotFoundError
from engine.cli.samples import sample_order, sample_shipment
from tests.conftest import Service
from tests.support.ids import new_order_id
from tests.support.waiting import eventually


async def test_shipped_with_the_order_starts_the_journey_once(service: Service) -> None:
    order_id = new_order_id("EARLY")
    order = sample_order(order_id, variant=1)
    shipped = pb.OrderEvent(
        event_id="ship-1", type=pb.EVENT_TYPE_SHIPPED, shipment=sample_shipment(order_id)
    )
    response = await service.client.record_event_with_order(order_id, shipped, order)
    assert response.journey_id == f"order-{order_id}"
    # The same event again, and the order system's own start afterwards: one journey.
    await service.client.record_event_with_order(order_id, shipped, order)
    started = await service.client.start_journey(order)
    assert not started.created

    mails = await service.mails_for(response.journey_id, 2)
    assert [m.message["X-Aftercare-Step"] for m in mails] == [
        "order_confirmation",
        "shipping_notice",
    ]
    journey = await eventually(
        lambda: service.client.get_journey(order_id), lambda j: len(j.sent) == 2
    )
    assert journey.stage == pb.JOURNEY_STAGE_SHIPPED
    assert sum("duplicate event ship-1" in e.detail for e in journey.timeline) == 1


async def test_cancelled_before_the_journey_is_not_found_even_with_the_order(
    service: Service,
) -> None:
    order_id = new_order_id("EARLY")
    with pytest.raises(JourneyNotFoundError):
        await service.client.record_event_with_order(
            order_id,
            pb.OrderEvent(event_id="c-1", type=pb.EVENT_TYPE_CANCELLED),
            sample_order(order_id),
        )
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(order_id)


async def test_the_order_must_be_the_events_order(service: Service) -> None:
    order_id = new_order_id("EARLY")
    with pytest.raises(InvalidRequestError) as err:
        await service.client.record_event_with_order(
            order_id,
            pb.OrderEvent(event_id="s-1", type=pb.EVENT_TYPE_SHIPPED),
            sample_order(new_order_id("OTHER")),
        )
    assert "order.order_id" in err.value.fields
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(order_id)
