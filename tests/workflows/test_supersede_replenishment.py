"""A new journey of the same customer with the same consumable stops the reminders of
the older journey (found through Temporal visibility on the real dev server)."""

from __future__ import annotations

from aftercare.v1 import journey_pb2 as pb

from engine.samples import sample_order
from tests.conftest import Service
from tests.support.ids import new_order_id
from tests.support.waiting import eventually


def _coffee_order(order_id: str, customer_id: str) -> pb.Order:
    order = sample_order(order_id, variant=0)  # coffee beans: a consumable
    order.customer.id = customer_id
    return order


async def test_reorder_in_a_new_journey_stops_older_reminders(service: Service) -> None:
    customer = f"cus_{new_order_id('R')}"
    first_id, second_id = new_order_id("REPL"), new_order_id("REPL")
    await service.client.start_journey(_coffee_order(first_id, customer))
    await service.client.record_event(
        first_id, pb.OrderEvent(event_id="d-1", type=pb.EVENT_TYPE_DELIVERED)
    )
    first = await eventually(
        lambda: service.client.get_journey(first_id),
        lambda j: any(s.step.startswith("replenishment:COF-ETH-500") for s in j.scheduled),
    )
    assert first.plan.id == "consumables"

    await service.client.start_journey(_coffee_order(second_id, customer))
    first = await eventually(
        lambda: service.client.get_journey(first_id),
        lambda j: not any(s.step.startswith("replenishment:") for s in j.scheduled),
    )
    assert any("replenishment:COF-ETH-500: reordered" in e.detail for e in first.timeline)
    second = await service.client.get_journey(second_id)
    assert any(f"order-{first_id}" in e.detail for e in second.timeline)
    # Other consumables of the first order (none here) and its other steps go on.
    assert any(s.step == "thank_you" for s in first.scheduled)
