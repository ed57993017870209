"""Bad input gets INVALID_ARGUMENT naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from aftercare.v1 import journey_pb2 as pb

from clients import InvalidRequestError, JourneyNotFoundError
from engine.cli.samples import sample_order
from tests.conftest import Service
from tests.support.ids import new_order_id


def _bad_email(order: pb.Order) -> None:
    order.customer.email = "not-an-address"


def _no_items(order: pb.Order) -> None:
    del order.items[:]


def _negative_quantity(order: pb.Order) -> None:
    order.items[0].quantity = -2


def _bad_timezone(order: pb.Order) -> None:
    order.customer.timezone = "Mars/Olympus_Mons"


def _bad_currency(order: pb.Order) -> None:
    order.currency = "XYZQ"


def _wrong_total(order: pb.Order) -> None:
    order.total_minor += 1


def _control_chars_in_name(order: pb.Order) -> None:
    order.customer.name = "Eve\r\nBcc: everyone@example.com"


def _bad_country(order: pb.Order) -> None:
    order.shipping_address.country_code = "ZZ"


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (_bad_email, "order.customer.email"),
        (_no_items, "order.items"),
        (_negative_quantity, "order.items[0].quantity"),
        (_bad_timezone, "order.customer.timezone"),
        (_bad_currency, "order.currency"),
        (_wrong_total, "order.total_minor"),
        (_control_chars_in_name, "order.customer.name"),
        (_bad_country, "order.shipping_address.country_code"),
    ],
)
async def test_invalid_order_names_the_field_and_starts_nothing(
    service: Service, spoil: Callable[[pb.Order], None], field: str
) -> None:
    order_id = new_order_id("BAD")
    order = sample_order(order_id)
    spoil(order)
    with pytest.raises(InvalidRequestError) as err:
        await service.client.start_journey(order)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.fields
    assert field in err.value.message
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(order_id)


async def test_bad_order_id_is_invalid(service: Service) -> None:
    order = sample_order("has spaces/and slashes")
    with pytest.raises(InvalidRequestError) as err:
        await service.client.start_journey(order)
    assert "order.order_id" in err.value.fields


async def test_every_problem_is_reported_at_once(service: Service) -> None:
    order = sample_order(new_order_id("BAD"))
    _bad_email(order)
    _negative_quantity(order)
    with pytest.raises(InvalidRequestError) as err:
        await service.client.start_journey(order)
    assert {"order.customer.email", "order.items[0].quantity"} <= set(err.value.fields)


async def test_unknown_event_type_is_invalid(service: Service) -> None:
    order_id = new_order_id("EVT")
    await service.client.start_journey(sample_order(order_id))
    event = pb.OrderEvent(event_id="e-1")
    event.type = 99  # type: ignore[assignment]  # a value no release of the API defines
    with pytest.raises(InvalidRequestError) as err:
        await service.client.record_event(order_id, event)
    assert "event.type" in err.value.fields
    unspecified = pb.OrderEvent(event_id="e-2", type=pb.EVENT_TYPE_UNSPECIFIED)
    with pytest.raises(InvalidRequestError):
        await service.client.record_event(order_id, unspecified)
    journey = await service.client.get_journey(order_id)
    assert not any(entry.kind == "event" for entry in journey.timeline)


async def test_feedback_score_out_of_range_is_invalid(service: Service) -> None:
    event = pb.OrderEvent(
        event_id="f-1", type=pb.EVENT_TYPE_FEEDBACK, feedback=pb.Feedback(score=11)
    )
    with pytest.raises(InvalidRequestError) as err:
        await service.client.record_event(new_order_id(), event)
    assert "event.feedback.score" in err.value.fields


async def test_missing_event_is_invalid(service: Service) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await service.client.record_event(new_order_id(), pb.OrderEvent())
    assert "event.event_id" in err.value.fields


async def test_list_rejects_unsafe_customer_id(service: Service) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await service.client.list_journeys(customer_id='x" OR WorkflowType != "')
    assert "customer_id" in err.value.fields
