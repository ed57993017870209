"""What ops see in the Temporal UI: search attributes, static summary, current details."""

from __future__ import annotations

from aftercare.v1 import journey_pb2 as pb
from temporalio.api.sdk.v1 import WorkflowMetadata

from engine.cli.samples import sample_order
from tests.conftest import Service
from tests.support.ids import new_order_id
from tests.support.waiting import eventually
from workflows import search_attributes as sa


async def test_journey_carries_search_attributes_summary_and_details(service: Service) -> None:
    order_id = new_order_id("UI")
    order = sample_order(order_id, variant=0)
    started = await service.client.start_journey(order)
    await service.mails_for(started.journey_id, 1)
    handle = service.temporal.get_workflow_handle(started.journey_id)

    description = await handle.describe()
    attributes = description.typed_search_attributes
    assert attributes.get(sa.ORDER_ID) == order_id
    assert attributes.get(sa.CUSTOMER_ID) == order.customer.id
    assert attributes.get(sa.JOURNEY_STAGE) == "ordered"
    summary = await description.static_summary()
    assert summary is not None
    assert order_id in summary
    assert "3 item(s)" in summary  # 2 bags of beans and a grinder
    # No personal data in what the UI lists.
    for personal in (order.customer.name, order.customer.email, order.customer.phone):
        assert personal not in summary

    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "ordered" in metadata.current_details
    assert "consumables v3" in metadata.current_details  # coffee: the pinned plan
    assert "shipping_delay" in metadata.current_details  # the SLA apology, if nothing ships
    plan = await eventually(
        handle.describe, lambda d: d.typed_search_attributes.get(sa.JOURNEY_PLAN) is not None
    )
    assert plan.typed_search_attributes.get(sa.JOURNEY_PLAN) == "consumables@v3"

    await service.client.record_event(
        order_id, pb.OrderEvent(event_id="s", type=pb.EVENT_TYPE_SHIPPED)
    )
    described = await eventually(
        handle.describe,
        lambda d: d.typed_search_attributes.get(sa.JOURNEY_STAGE) == "shipped",
    )
    assert described.typed_search_attributes.get(sa.ORDER_ID) == order_id
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "shipped" in metadata.current_details
    assert "shipping_delay" not in metadata.current_details
