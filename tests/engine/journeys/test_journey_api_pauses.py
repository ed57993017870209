"""GetJourney shows a held step, end to end (gRPC API -> Temporal dev server -> worker
-> SMTP sink): a journey paused by its operator holds its shipping notice, says so in
the reply and the JourneyPaused search attribute, and sends it once resumed."""

from __future__ import annotations

from aftercare.v1 import journey_pb2 as pb
from temporalio.api.sdk.v1 import WorkflowMetadata

from engine.cli.samples import sample_order, sample_shipment
from tests.conftest import Service
from tests.support.ids import new_order_id
from tests.support.waiting import eventually
from workflows import search_attributes as sa
from workflows.contracts import PAUSE_JOURNEY_ALL_SIGNAL, RESUME_JOURNEY_SIGNAL


async def test_get_journey_shows_a_step_held_by_the_journeys_pause(service: Service) -> None:
    order_id = new_order_id("PAUSED")
    started = await service.client.start_journey(sample_order(order_id, variant=0))
    await service.mails_for(started.journey_id, 1)  # the confirmation
    handle = service.temporal.get_workflow_handle(started.journey_id)

    await handle.signal(PAUSE_JOURNEY_ALL_SIGNAL)
    await service.client.record_event(
        order_id,
        pb.OrderEvent(
            event_id="ship-1", type=pb.EVENT_TYPE_SHIPPED, shipment=sample_shipment(order_id)
        ),
    )
    journey = await eventually(
        lambda: service.client.get_journey(order_id),
        lambda j: any(step.held for step in j.scheduled),
    )

    assert journey.paused
    [held] = [step for step in journey.scheduled if step.held]
    assert (held.step, held.held) == ("shipping_notice", "the journey is paused")
    assert journey.next_step.startswith("shipping_notice held (the journey is paused)")
    assert [m.step for m in journey.sent] == ["order_confirmation"]
    described = await handle.describe()
    assert described.typed_search_attributes.get(sa.JOURNEY_PAUSED) is True
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details.startswith("**Paused:** the journey is paused (all its sends)")

    await handle.signal(RESUME_JOURNEY_SIGNAL)
    mails = await service.mails_for(started.journey_id, 2)

    assert mails[1].message["X-Aftercare-Step"] == "shipping_notice"
    resumed = await eventually(
        lambda: service.client.get_journey(order_id), lambda j: len(j.sent) == 2
    )
    assert not resumed.paused
    assert not any(step.held for step in resumed.scheduled)
    await service.client.cancel_journey(order_id, "test over")
