"""Bad input gets INVALID_ARGUMENT naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import preferences_pb2 as ppb
from temporalio.client import Client

from clients import InvalidRequestError, JourneyNotFoundError
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.platform.database.migrate import upgrade_database
from tests.conftest import Service
from tests.support.databases import sqlite_url
from tests.support.ids import new_order_id
from tests.support.preferences import PreferencesStack, preferences_stack
from tests.support.waiting import eventually


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


# --- customer ids that are personal data ----------------------------------------------
# A customer id becomes a search attribute (visible to everyone with the Temporal UI,
# never encrypted) and goes into signed links: an email address or phone number there
# is personal data in the clear.

PERSONAL_IDS = [
    "jane.doe@example.com",
    "ops:Jane.Doe@Shop.Example",
    "4915112345678",  # E.164 without its '+': 13 digits, a German mobile number
    "+4915112345678",
    "030-12345678",  # a Berlin number as people write it
    "415-555-0100",
]
# Opaque ids stay valid, plain numbers up to 12 digits included: a shop's numeric
# customer id cannot be told from a national number without a country, so only
# 13-15 digits that read as a possible international number count as a phone.
OPAQUE_IDS = [
    "cus_123",
    "12345678",
    "123456789012",
    "491511234567",  # 12 digits: an id, though it starts like a German number
    "1234567890123",  # 13 digits, but +1 numbers have 11: no phone number
    "CUS-2024-0001",
    "shop:cus@eu",  # an '@' without a domain name is no address
]


@pytest.mark.parametrize("customer_id", PERSONAL_IDS)
async def test_customer_id_that_is_an_email_or_phone_is_refused(
    service: Service, customer_id: str
) -> None:
    order_id = new_order_id("PII")
    order = sample_order(order_id)
    order.customer.id = customer_id
    with pytest.raises(InvalidRequestError) as err:
        await service.client.start_journey(order)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(err.value.fields) == ["order.customer.id"]
    # The answer names the field without repeating the personal data.
    assert customer_id not in err.value.message
    assert customer_id not in err.value.fields["order.customer.id"]
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(order_id)

    # The same order carried by an event that would start the journey.
    shipped = pb.OrderEvent(event_id="e-1", type=pb.EVENT_TYPE_SHIPPED)
    with pytest.raises(InvalidRequestError) as err:
        await service.client.record_event_with_order(order_id, shipped, order)
    assert list(err.value.fields) == ["order.customer.id"]
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(order_id)

    with pytest.raises(InvalidRequestError) as err:
        await service.client.list_journeys(customer_id=customer_id)
    assert list(err.value.fields) == ["customer_id"]
    assert customer_id not in err.value.message


@pytest.mark.parametrize("customer_id", OPAQUE_IDS)
async def test_opaque_customer_ids_stay_valid(service: Service, customer_id: str) -> None:
    order = sample_order(new_order_id("OPQ"))
    order.customer.id = customer_id
    started = await service.client.start_journey(order)
    assert started.created
    # Visibility lags a start a little.
    await eventually(
        lambda: service.client.list_journeys(customer_id=customer_id),
        lambda listed: started.journey_id in {j.journey_id for j in listed.journeys},
    )


@pytest.fixture
async def preferences(
    temporal_client: Client, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[PreferencesStack]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    # No worker: nothing is written for these customers, so no journey is told.
    async with preferences_stack(
        temporal_client, database, tmp_path, mail_sink, with_worker=False
    ) as running:
        yield running


@pytest.mark.parametrize("customer_id", ["jane.doe@example.com", "4915112345678"])
async def test_preferences_refuse_a_customer_id_that_is_an_email_or_phone(
    preferences: PreferencesStack, customer_id: str
) -> None:
    client = preferences.client
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.get_preferences(customer_id),
        lambda: client.unsubscribe(customer_id),
        lambda: client.update_preferences(
            ppb.UpdatePreferencesRequest(customer_id=customer_id, locale="de")
        ),
    ]
    for call in calls:
        with pytest.raises(InvalidRequestError) as err:
            await call()
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert list(err.value.fields) == ["customer_id"]
        assert customer_id not in err.value.message
    # Opaque ids still work, numeric ones included.
    assert (await client.get_preferences("12345678")).preferences.customer_id == "12345678"


# --- amounts and names ----------------------------------------------------------------


async def test_discount_larger_than_the_subtotal_is_refused(service: Service) -> None:
    order_id = new_order_id("DSC")
    order = sample_order(order_id)
    order.discount_minor = order.subtotal_minor + 1
    # Everything else adds up, so the discount is the only thing wrong.
    order.total_minor = (
        order.subtotal_minor + order.shipping_minor - order.discount_minor + order.tax_minor
    )
    with pytest.raises(InvalidRequestError) as err:
        await service.client.start_journey(order)
    assert list(err.value.fields) == ["order.discount_minor"]
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(order_id)


async def test_discount_equal_to_the_subtotal_is_accepted(service: Service) -> None:
    order = sample_order(new_order_id("DSC"))
    order.discount_minor = order.subtotal_minor  # a free order: only shipping and tax
    order.total_minor = order.shipping_minor + order.tax_minor
    assert (await service.client.start_journey(order)).created


# Persian and Indic scripts need the zero-width (non-)joiner to spell words right:
# ZWNJ keeps the two parts of Alireza apart without a space, ZWJ makes the half
# form of the consonant in Lakshmi.
ALIREZA = "علی\u200cرضا"  # noqa: RUF001 - Persian letters, on purpose
PERSIAN = f"{ALIREZA} محمدی"
DEVANAGARI = "लक्\u200dष्मी शर्मा"


async def test_names_with_joiners_are_accepted_and_kept(service: Service) -> None:
    order = sample_order(new_order_id("ZWJ"))
    order.customer.name = PERSIAN
    order.shipping_address.name = DEVANAGARI
    order.items[0].name = f"Coffee for {ALIREZA}"
    started = await service.client.start_journey(order)
    assert started.created
    [mail] = await service.mails_for(started.journey_id, 1)
    text = mail.message.get_body(preferencelist=("plain",))
    assert text is not None
    content = text.get_content()
    assert ALIREZA in content
    assert DEVANAGARI in content


@pytest.mark.parametrize(
    "spoiled",
    [
        "Eve\u202eevil",  # right-to-left override
        "Eve\u2066x\u2069",  # left-to-right isolate
        "Eve\u200bSmith",  # zero-width space
        "\ufeffEve",  # byte order mark
        "\u200d",  # a joiner alone joins nothing: an invisible name
        "Eve \u200cSmith",  # nor does one after a space
    ],
)
async def test_dangerous_format_characters_are_still_refused(
    service: Service, spoiled: str
) -> None:
    order = sample_order(new_order_id("CF"))
    order.customer.name = spoiled
    with pytest.raises(InvalidRequestError) as err:
        await service.client.start_journey(order)
    assert "order.customer.name" in err.value.fields
