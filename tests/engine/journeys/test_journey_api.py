"""End to end through the real stack: gRPC API -> Temporal -> worker -> SMTP sink."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import grpc
import pytest
from aftercare.v1 import journey_pb2 as pb

from clients import (
    JourneyEndedError,
    JourneyExistsError,
    JourneyNotFoundError,
)
from engine.cli.samples import sample_order, sample_shipment
from tests.conftest import Service
from tests.support.ids import new_order_id
from tests.support.waiting import eventually


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


async def test_start_sends_confirmation_then_shipping_notice(service: Service) -> None:
    order_id = new_order_id("E2E")
    order = sample_order(order_id, variant=0)

    started = await service.client.start_journey(order)
    assert started.created
    assert started.journey_id == f"order-{order_id}"

    [confirmation] = await service.mails_for(started.journey_id, 1)
    message = confirmation.message
    assert confirmation.recipients == [order.customer.email]
    assert message["X-Aftercare-Step"] == "order_confirmation"
    assert order_id in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = _parts(message)
    for item in order.items:
        assert item.name in text
        assert item.name in html
    assert order_id in text
    assert order_id in html

    shipment = sample_shipment(order_id)
    await service.client.record_event(
        order_id, pb.OrderEvent(event_id="ship-1", type=pb.EVENT_TYPE_SHIPPED, shipment=shipment)
    )
    mails = await service.mails_for(started.journey_id, 2)
    notice = mails[1].message
    assert notice["X-Aftercare-Step"] == "shipping_notice"
    text, html = _parts(notice)
    assert shipment.tracking_number in text
    assert shipment.tracking_url in html
    assert shipment.carrier in text

    journey = await eventually(
        lambda: service.client.get_journey(order_id), lambda j: len(j.sent) == 2
    )
    assert journey.stage == pb.JOURNEY_STAGE_SHIPPED
    assert journey.status == pb.JOURNEY_STATUS_RUNNING
    assert [(m.step, m.channel) for m in journey.sent] == [
        ("order_confirmation", pb.CHANNEL_EMAIL),
        ("shipping_notice", pb.CHANNEL_EMAIL),
    ]
    assert journey.sent[0].template == "order_confirmation"
    assert journey.sent[0].sent_at.seconds > 0
    assert pb.EVENT_TYPE_DELIVERED in journey.waiting_for
    assert pb.EVENT_TYPE_SHIPPED not in journey.waiting_for
    assert "deliver" in journey.next_step.lower()


async def test_start_is_idempotent(service: Service) -> None:
    order_id = new_order_id("IDEM")
    order = sample_order(order_id, variant=1)
    first, second = await asyncio.gather(
        service.client.start_journey(order), service.client.start_journey(order)
    )
    assert {first.created, second.created} == {True, False}
    assert first.journey_id == second.journey_id
    third = await service.client.start_journey(order)
    assert not third.created
    await service.mails_for(first.journey_id, 1)
    await asyncio.sleep(0.5)  # a second journey would have sent a second confirmation
    assert len(await service.mails_for(first.journey_id, 1)) == 1


async def test_cancel_stops_the_journey_and_the_order_id_stays_used(service: Service) -> None:
    order_id = new_order_id("CXL")
    started = await service.client.start_journey(sample_order(order_id, variant=2))
    await service.mails_for(started.journey_id, 1)

    await service.client.cancel_journey(order_id, reason="customer asked support")
    journey = await eventually(
        lambda: service.client.get_journey(order_id),
        lambda j: j.status == pb.JOURNEY_STATUS_CANCELLED,
        seconds=60,  # under a full suite on 2 cores the cancel can take its time
    )
    assert journey.stage == pb.JOURNEY_STAGE_STOPPED
    assert any("cancelled by an operator" in entry.detail for entry in journey.timeline)
    assert list(journey.waiting_for) == []

    with pytest.raises(JourneyEndedError):
        await service.client.record_event(
            order_id, pb.OrderEvent(event_id="late", type=pb.EVENT_TYPE_SHIPPED)
        )
    with pytest.raises(JourneyEndedError):
        await service.client.cancel_journey(order_id)
    with pytest.raises(JourneyExistsError) as refused:
        await service.client.start_journey(sample_order(order_id, variant=2))
    assert refused.value.code == grpc.StatusCode.ALREADY_EXISTS
    await asyncio.sleep(0.5)
    assert len(await service.mails_for(started.journey_id, 1)) == 1


async def test_order_cancelled_event_confirms_and_ends(service: Service) -> None:
    order_id = new_order_id("OCX")
    started = await service.client.start_journey(sample_order(order_id))
    await service.client.record_event(
        order_id, pb.OrderEvent(event_id="c-1", type=pb.EVENT_TYPE_CANCELLED)
    )
    mails = await service.mails_for(started.journey_id, 2)
    assert [m.message["X-Aftercare-Step"] for m in mails] == [
        "order_confirmation",
        "order_cancelled",
    ]
    journey = await eventually(
        lambda: service.client.get_journey(order_id),
        lambda j: j.status == pb.JOURNEY_STATUS_COMPLETED,
    )
    assert journey.stage == pb.JOURNEY_STAGE_ORDER_CANCELLED


async def test_duplicate_and_late_events_are_recorded_not_reapplied(service: Service) -> None:
    order_id = new_order_id("DUP")
    started = await service.client.start_journey(sample_order(order_id))
    shipped = pb.OrderEvent(
        event_id="s-1", type=pb.EVENT_TYPE_SHIPPED, shipment=sample_shipment(order_id)
    )
    await service.client.record_event(order_id, shipped)
    await service.client.record_event(order_id, shipped)
    await service.client.record_event(
        order_id, pb.OrderEvent(event_id="s-2", type=pb.EVENT_TYPE_SHIPPED)
    )
    await service.mails_for(started.journey_id, 2)
    journey = await eventually(
        lambda: service.client.get_journey(order_id),
        # The email reaches the sink just before the journey records the send.
        lambda j: sum("s-2" in e.detail for e in j.timeline) >= 1 and len(j.sent) == 2,
    )
    assert any("duplicate event s-1" in entry.detail for entry in journey.timeline)
    assert [m.step for m in journey.sent] == ["order_confirmation", "shipping_notice"]
    await asyncio.sleep(0.5)
    assert len(await service.mails_for(started.journey_id, 2)) == 2


async def test_delivery_sends_notices_and_schedules_the_follow_ups(service: Service) -> None:
    order_id = new_order_id("DLV")
    started = await service.client.start_journey(sample_order(order_id, variant=1))
    # Carrier scans come hours apart; each waits for the notice of the one before.
    # Events that reach the journey in one workflow task count as simultaneous, and an
    # `out_for_delivery` as early as `shipped` makes the shipping notice moot (by design).
    for n, event_type in enumerate(
        [pb.EVENT_TYPE_SHIPPED, pb.EVENT_TYPE_OUT_FOR_DELIVERY, pb.EVENT_TYPE_DELIVERED]
    ):
        await service.mails_for(started.journey_id, n + 1)
        await service.client.record_event(
            order_id, pb.OrderEvent(event_id=f"d-{n}", type=event_type)
        )
    mails = await service.mails_for(started.journey_id, 4)
    assert [m.message["X-Aftercare-Step"] for m in mails] == [
        "order_confirmation",
        "shipping_notice",
        "out_for_delivery",
        "delivered",
    ]
    journey = await eventually(
        lambda: service.client.get_journey(order_id),
        lambda j: j.stage == pb.JOURNEY_STAGE_DELIVERED and len(j.sent) == 4,
    )
    assert journey.status == pb.JOURNEY_STATUS_RUNNING
    assert journey.plan.id == "default"
    assert journey.plan.version >= 1
    assert len(journey.plan.content_hash) == 64
    scheduled = {step.step: step for step in journey.scheduled}
    assert {"thank_you", "product_education", "feedback_request", "cross_sell"} <= set(scheduled)
    assert "shipping_delay" not in scheduled  # it shipped: no apology needed
    education = scheduled["product_education"]
    assert education.timezone == "Europe/Berlin"
    assert "T10:00+01:00" in education.due_local  # 10:00 local, Berlin in winter
    assert education.channels == [pb.CHANNEL_EMAIL]
    assert journey.scheduled[0].due_at.ToDatetime() <= journey.scheduled[-1].due_at.ToDatetime()
    assert journey.next_step.startswith(journey.scheduled[0].step)


async def test_unknown_order_is_not_found(service: Service) -> None:
    missing = new_order_id("NOPE")
    with pytest.raises(JourneyNotFoundError) as err:
        await service.client.get_journey(missing)
    assert missing in err.value.message
    with pytest.raises(JourneyNotFoundError):
        await service.client.record_event(
            missing, pb.OrderEvent(event_id="x", type=pb.EVENT_TYPE_SHIPPED)
        )
    with pytest.raises(JourneyNotFoundError):
        await service.client.cancel_journey(missing)


async def test_list_filters_by_customer_and_stage(service: Service) -> None:
    shipped_id, waiting_id = new_order_id("LST"), new_order_id("LST")
    customer = f"cus_{new_order_id('C')}"
    for order_id in (shipped_id, waiting_id):
        order = sample_order(order_id)
        order.customer.id = customer
        await service.client.start_journey(order)
    await service.client.record_event(
        shipped_id, pb.OrderEvent(event_id="s", type=pb.EVENT_TYPE_SHIPPED)
    )
    listed = await eventually(
        lambda: service.client.list_journeys(customer_id=customer),
        lambda page: len(page.journeys) == 2,
    )
    assert {j.order_id for j in listed.journeys} == {shipped_id, waiting_id}
    assert all(j.customer_id == customer for j in listed.journeys)
    only_shipped = await eventually(
        lambda: service.client.list_journeys(customer_id=customer, stage=pb.JOURNEY_STAGE_SHIPPED),
        lambda page: len(page.journeys) == 1,
    )
    assert only_shipped.journeys[0].order_id == shipped_id
    assert only_shipped.journeys[0].stage == pb.JOURNEY_STAGE_SHIPPED
    first_page = await service.client.list_journeys(customer_id=customer, page_size=1)
    assert len(first_page.journeys) == 1
    assert first_page.next_page_token
    second_page = await service.client.list_journeys(
        customer_id=customer, page_size=1, page_token=first_page.next_page_token
    )
    assert {first_page.journeys[0].order_id, second_page.journeys[0].order_id} == {
        shipped_id,
        waiting_id,
    }
