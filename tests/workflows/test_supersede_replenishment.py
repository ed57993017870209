"""A new journey of the same customer with the same consumable stops the reminders of
the older journey (found through Temporal visibility on the real dev server); a
customer's first journey has nobody to tell and searches for nobody."""

from __future__ import annotations

from aftercare.v1 import journey_pb2 as pb
from temporalio.api.enums.v1 import EventType

from engine.cli.samples import sample_order
from engine.journeys.directory import JourneyDirectory, initial_search_attributes
from tests.conftest import Service
from tests.support.ids import new_order_id
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.contracts import SUPERSEDE_REPLENISHMENT_ACTIVITY
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.orders import LineItem
from workflows.state import JourneyInput


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


async def _supersede_activities(service: Service, order_id: str) -> int:
    """How many supersede activities the journey's history has scheduled."""
    handle = service.temporal.get_workflow_handle(journey_id_for(order_id))
    history = await handle.fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name
        == SUPERSEDE_REPLENISHMENT_ACTIVITY
    )


async def test_a_customers_first_journey_searches_for_no_older_one(service: Service) -> None:
    """The API tells a journey when its customer has no other journey on record
    (``customer_has_other_journeys``, from the key registry): it then schedules no
    supersede activity; without that knowledge (older histories) it searches."""
    customer = f"cus_{new_order_id('F')}"
    coffee = LineItem(
        sku="COF-1",
        name="Coffee beans",
        category="coffee",
        quantity=1,
        unit_price_minor=1400,
        consumption_days=14,
    )
    directory = JourneyDirectory(service.temporal, service.settings.task_queue)

    async def started(has_other_journeys: bool) -> str:
        order = domain_order(customer_id=customer, items=[coffee])
        await service.temporal.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order, customer_has_other_journeys=has_other_journeys),
            id=journey_id_for(order.order_id),
            task_queue=service.settings.task_queue,
            search_attributes=initial_search_attributes(order),
        )
        state = await eventually(
            lambda: directory.get(order.order_id), lambda j: j.state.older_journeys_told
        )
        assert state.state.plan_id == "consumables"
        return order.order_id

    first = await started(has_other_journeys=False)
    assert await _supersede_activities(service, first) == 0
    second = await started(has_other_journeys=True)
    assert await _supersede_activities(service, second) == 1
