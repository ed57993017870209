"""The field rules both gRPC services share (engine.platform.rpc.violations), at their
boundaries: which customer ids are personal data, which format characters a name
may hold. The services' own tests drive the same rules through the real API."""

from __future__ import annotations

import pytest

from engine.platform.rpc.violations import Violations


def problems_of_customer_id(value: str) -> list[str]:
    v = Violations()
    assert v.customer_id("order.customer.id", value) == value
    assert all(item.field == "order.customer.id" for item in v.items)
    return [item.description for item in v.items]


@pytest.mark.parametrize(
    "value",
    [
        "cus_123",
        "C-1001",
        "12345678",
        "1234567",
        "123456789012",  # up to 12 plain digits: an id, whatever a country might dial
        "491511234567",
        "447911123456",  # the boundary: 12 digits are an id, though +44 7911 123456 exists
        "1234567890123",  # 13 digits, but a +1 number has 11
        "123456789012345678",  # past E.164's 15 digits (a snowflake id)
        "cus_4915112345678",  # a number inside an id is no phone number
        "CUS-2024-0001",
        "shop:cus@eu",
        "jane@localhost",
    ],
)
def test_opaque_ids_are_valid(value: str) -> None:
    assert problems_of_customer_id(value) == []


@pytest.mark.parametrize(
    "value",
    [
        "jane@example.com",
        "Jane.Doe@Example.COM",
        "ops:jane.doe@shop.example",
        "4915112345678",  # 13 digits reading as +49 151 ...
        "+447911123456",
        "+4915112345678",
        "030-12345678",
        "0151.12345678",
        "415-555-0100",
    ],
)
def test_email_addresses_and_phone_numbers_are_refused(value: str) -> None:
    problems = problems_of_customer_id(value)
    assert len(problems) == 1
    assert "not an email address or phone number" in problems[0]
    assert value not in problems[0]


def test_a_required_customer_id_is_required() -> None:
    assert problems_of_customer_id("") == ["is required"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("\u0639\u0644\u06cc\u200c\u0631\u0636\u0627", True),  # Alireza, with ZWNJ
        ("\u0915\u094d\u200d\u0937", True),  # the conjunct KSSA with ZWJ
        ("\U0001f469\u200d\U0001f4bb", True),  # an emoji sequence joined by ZWJ
        ("Eve\u200c", True),  # a trailing joiner still follows a letter
        ("\u200dEve", False),  # nothing before it to join
        ("Eve \u200dSmith", False),
        ("Eve\u200d\u200cSmith", False),  # a joiner after a joiner
        ("\u200c", False),
        ("Eve\u202eevil", False),
        ("Eve\u202a", False),
        ("Eve\u2066x\u2069", False),
        ("Eve\u200bSmith", False),
        ("\ufeffEve", False),
        ("Eve\u200fSmith", False),  # right-to-left mark: still refused
        ("Eve\u00adSmith", False),  # soft hyphen: still refused
        ("Eve\x00", False),
    ],
)
def test_only_joiners_among_format_characters_are_allowed(value: str, accepted: bool) -> None:
    v = Violations()
    v.text("name", value)
    assert (v.items == []) is accepted, v.items
