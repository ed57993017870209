"""An event whose signal finds no journey, while its order's StartJourney lands just
after: the directory finds the journey running when it looks, and signals it again
instead of answering that the journey has ended (real dev server, no worker needed:
the server keeps signals for a journey nobody has run yet)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from engine.journeys.directory import JourneyDirectory
from engine.journeys.errors import JourneyNotFound
from tests.support.orders import domain_order
from workflows.orders import Order, OrderEvent
from workflows.vocabulary import EventType


class StartedBetweenSignalAndLookup(JourneyDirectory):
    """Starts the racing order at the moment the event's failed signal makes the
    directory look the journey up: the interleaving two concurrent API calls can take."""

    def __init__(self, client: Client, task_queue: str, racing: Order | None) -> None:
        super().__init__(client, task_queue)
        self._racing = racing
        self.lookups = 0

    async def _status(self, order_id: str) -> WorkflowExecutionStatus:
        self.lookups += 1
        if self._racing is not None and self.lookups == 1:
            await self.start(self._racing)
        return await super()._status(order_id)


def shipped() -> OrderEvent:
    return OrderEvent(
        event_id=f"ship-{uuid.uuid4().hex[:8]}",
        type=EventType.SHIPPED,
        occurred_at=datetime.now(UTC),
    )


async def test_an_event_racing_its_orders_start_is_signalled_again(
    temporal_client: Client,
) -> None:
    order = domain_order(order_id=f"RACE-{uuid.uuid4().hex[:8]}")
    directory = StartedBetweenSignalAndLookup(
        temporal_client, f"race-{uuid.uuid4().hex[:8]}", racing=order
    )

    journey_id = await directory.record_event(order.order_id, shipped())

    handle = temporal_client.get_workflow_handle(journey_id)
    try:
        history = await handle.fetch_history()
        signals = [
            event.workflow_execution_signaled_event_attributes.signal_name
            for event in history.events
            if event.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert signals == ["record_event"]
        assert directory.lookups == 1
    finally:
        await handle.terminate("test over")


async def test_an_event_for_an_order_nobody_started_is_not_found(
    temporal_client: Client,
) -> None:
    directory = StartedBetweenSignalAndLookup(
        temporal_client, f"race-{uuid.uuid4().hex[:8]}", racing=None
    )
    with pytest.raises(JourneyNotFound):
        await directory.record_event(f"NOBODY-{uuid.uuid4().hex[:8]}", shipped())
    assert directory.lookups == 1
