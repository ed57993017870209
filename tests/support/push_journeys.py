"""Journeys on a preferences stack (tests/support/preferences.py) whose push steps a
test follows: start and wait until visibility lists them, drive events, read what the
journey knows of the customer's devices and how many push sends it scheduled."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from temporalio.client import WorkflowHandle

from tests.support.orders import domain_order
from tests.support.preferences import PreferencesStack
from tests.support.waiting import eventually
from workflows.contracts import channel_task_queue
from workflows.order_journey import OrderJourney
from workflows.orders import Order, OrderEvent, Shipment
from workflows.state import JourneyState
from workflows.vocabulary import Channel, EventType


def new_order() -> Order:
    tag = uuid.uuid4().hex[:10]
    return domain_order(customer_id=f"cus-{tag}", email=f"{tag}@example.test")


def handle_of(stack: PreferencesStack, order: Order) -> WorkflowHandle[OrderJourney, JourneyState]:
    return stack.temporal.get_workflow_handle_for(OrderJourney.run, f"order-{order.order_id}")


async def journey_when(
    stack: PreferencesStack, order: Order, accept: Callable[[JourneyState], bool]
) -> JourneyState:
    handle = handle_of(stack, order)
    return await eventually(lambda: handle.query(OrderJourney.state), accept, seconds=30)


def knows_device(present: bool) -> Callable[[JourneyState], bool]:
    return lambda s: s.overrides is not None and s.overrides.has_push_device is present


async def started_and_listed(stack: PreferencesStack, order: Order) -> None:
    """Start the journey and wait until visibility lists it (what telling relies on)."""
    directory = stack.parts.directory
    await directory.start(order)
    await eventually(
        lambda: directory.customer_journeys(order.customer.id, running_only=True),
        lambda found: len(found) == 1,
    )


async def event(stack: PreferencesStack, order: Order, kind: EventType, step: str) -> JourneyState:
    """Record ``kind`` (with a shipment when it is ``shipped``) and wait for ``step``."""
    shipment = (
        Shipment(carrier="DHL", tracking_number="JD0146001", tracking_url="https://t.example/1")
        if kind == EventType.SHIPPED
        else None
    )
    await stack.parts.directory.record_event(
        order.order_id,
        OrderEvent(
            event_id=f"{kind}-{uuid.uuid4().hex[:6]}",
            type=kind,
            occurred_at=datetime.now(UTC),
            shipment=shipment,
        ),
    )
    return await journey_when(stack, order, lambda s: step in s.steps)


async def push_sends_scheduled(stack: PreferencesStack, order: Order) -> int:
    """Send activities the journey scheduled on the push channel's task queue."""
    queue = channel_task_queue(stack.settings.task_queue, Channel.PUSH)
    history = await handle_of(stack, order).fetch_history()
    return sum(
        1
        for entry in history.events
        if entry.HasField("activity_task_scheduled_event_attributes")
        and entry.activity_task_scheduled_event_attributes.task_queue.name == queue
    )
