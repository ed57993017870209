"""The variables every channel's templates see, built from one message's context."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from activities.rendering.context import (
    MAX_RECOMMENDATIONS,
    MessageContext,
    template_variables,
)
from tests.activities.email.samples import (
    BRAND,
    NEW_ADDRESS,
    SHIPMENT,
    SHOP,
    full_context,
    make_order,
)
from workflows.orders import LineItem, Recommendation

ORDER_URL = f"{SHOP}/orders/A-10023"


def variables(context: MessageContext, locale: str = "en") -> dict[str, Any]:
    return template_variables(BRAND, context, locale)


def test_context_defaults_keep_existing_callers_working() -> None:
    context = MessageContext(order=make_order())
    assert context.focus_item is None
    assert context.feedback is None
    assert context.skus == ()
    assert context.new_address is None
    assert context.run_out_at is None
    assert context.referral_code == ""


def test_every_variable_a_template_may_use_is_there() -> None:
    context = full_context(make_order())
    assert set(variables(context)) == {
        "brand",
        "order",
        "customer",
        "shipment",
        "first_item",
        "first_name",
        "links",
        "focus_item",
        "feedback",
        "skus",
        "affected_items",
        "whole_order",
        "new_address",
        "delivery_address",
        "run_out_at",
        "referral_code",
        "recommendations",
        "locale",
        "currency",
        "format_locale",
        "timezone",
    }


def test_the_order_alone_gives_defaults_for_everything() -> None:
    order = make_order()
    found = variables(MessageContext(order=order))
    assert found["brand"] is BRAND
    assert found["customer"] is order.customer
    assert found["first_name"] == "Jane"
    assert found["first_item"] is order.items[0]
    assert found["focus_item"] is order.items[0]
    assert found["affected_items"] == order.items
    assert found["whole_order"] is True
    assert found["delivery_address"] is order.shipping_address
    assert found["shipment"] is None
    assert (found["feedback"], found["new_address"], found["run_out_at"]) == (None, None, None)
    assert (found["skus"], found["referral_code"]) == ((), "")


def test_the_context_given_is_passed_on() -> None:
    order = make_order()
    context = full_context(order, skus=("ES-1",))
    found = variables(context)
    assert found["focus_item"] is order.items[-1]
    assert found["affected_items"] == [order.items[-1]]
    assert found["whole_order"] is False
    assert found["delivery_address"] is NEW_ADDRESS
    assert found["shipment"] is SHIPMENT
    assert found["feedback"] is context.feedback
    assert found["run_out_at"] == context.run_out_at
    assert found["referral_code"] == "JANE-10"


@pytest.mark.parametrize(
    ("skus", "affected", "whole"),
    [
        (("SH-1", "ES-1"), ["SH-1", "ES-1"], True),
        (("ES-1",), ["ES-1"], False),
        (("NOPE",), [], False),
    ],
)
def test_affected_items_follow_the_skus(
    skus: tuple[str, ...], affected: list[str], whole: bool
) -> None:
    found = variables(MessageContext(order=make_order(), skus=skus))
    assert [item.sku for item in found["affected_items"]] == affected
    assert found["whole_order"] is whole


def test_an_order_without_items_has_no_first_or_focus_item() -> None:
    order = replace(make_order(), items=[])
    found = variables(MessageContext(order=order, skus=("ES-1",)))
    assert found["first_item"] is None
    assert found["focus_item"] is None
    assert found["affected_items"] == []
    assert found["whole_order"] is False


def test_formatting_follows_the_customer_within_the_template_language() -> None:
    found = variables(MessageContext(order=make_order(locale="de-AT")), locale="de")
    assert found["locale"] == "de"
    assert (found["currency"], found["format_locale"], found["timezone"]) == (
        "EUR",
        "de_AT",
        "Europe/Berlin",
    )
    english = variables(MessageContext(order=make_order(locale="fr")), locale="en")
    assert english["format_locale"] == "en"


def test_links_default_to_the_shop_and_follow_the_focus_item() -> None:
    links = variables(full_context(make_order(), shipment=None))["links"]
    assert links == {
        "shop": SHOP,
        "order": ORDER_URL,
        "track_order": ORDER_URL,
        "help": f"{SHOP}/help",
        "feedback": f"{ORDER_URL}/feedback",
        "review": f"{ORDER_URL}/review",
        "reorder": f"{SHOP}/reorder/ES-1",
        "guide": f"{SHOP}/guides/ES-1",
        "referral": f"{SHOP}/referral?code=JANE-10",
        "unsubscribe": f"{SHOP}/account/email-preferences",
        "preferences": f"{SHOP}/account/email-preferences",
    }


def test_links_without_an_item_or_a_code_still_lead_somewhere() -> None:
    order = replace(make_order(order_id="A/1"), items=[])
    links = variables(MessageContext(order=order))["links"]
    assert links["order"] == f"{SHOP}/orders/A%2F1"
    assert links["reorder"] == f"{SHOP}/orders/A%2F1/reorder"
    assert links["guide"] == f"{SHOP}/guides"
    assert links["referral"] == f"{SHOP}/referral"


def test_the_carrier_and_the_caller_override_the_defaults_when_safe() -> None:
    context = MessageContext(
        order=make_order(),
        shipment=SHIPMENT,
        links={
            "help": "https://help.test/a",
            "survey": "https://survey.test/1",
            "review": "javascript:alert(1)",
            "extra": "https://x.test/\r\nBcc: y",
        },
    )
    links = variables(context)["links"]
    assert links["track_order"] == SHIPMENT.tracking_url
    assert links["help"] == "https://help.test/a"
    assert links["survey"] == "https://survey.test/1"
    # Unsafe: the default for a known link, the order page for one of the caller's own.
    assert links["review"] == f"{ORDER_URL}/review"
    assert links["extra"] == ORDER_URL


def test_an_unsafe_tracking_url_falls_back_to_the_order_page() -> None:
    context = MessageContext(
        order=make_order(), shipment=replace(SHIPMENT, tracking_url="javascript:x")
    )
    assert variables(context)["links"]["track_order"] == ORDER_URL


def test_recommendations_are_named_capped_and_safe() -> None:
    order = make_order(
        recommendations=[
            Recommendation(sku="N-0", name="  "),
            Recommendation(sku="A/1", name="Grinder", url="javascript:x"),
            Recommendation(sku="B-1", name="Frother", url="https://shop.test/p/frother"),
            Recommendation(sku="C-1", name="Cup"),
            Recommendation(sku="D-1", name="Descaler"),
        ]
    )
    cards = variables(MessageContext(order=order))["recommendations"]
    assert len(cards) == MAX_RECOMMENDATIONS
    assert [(card.name, card.url) for card in cards] == [
        ("Grinder", f"{SHOP}/products/A%2F1"),
        ("Frother", "https://shop.test/p/frother"),
        ("Cup", f"{SHOP}/products/C-1"),
    ]


def test_the_first_name_is_one_safe_word() -> None:
    found = variables(MessageContext(order=make_order(name="\r\nEve\nBcc")))
    assert found["first_name"] == "Eve"


def test_an_explicit_focus_item_wins_over_the_first() -> None:
    item = LineItem(sku="OT-1", name="Other", quantity=1, unit_price_minor=1)
    found = variables(MessageContext(order=make_order(), focus_item=item))
    assert found["focus_item"] is item
    assert found["links"]["reorder"] == f"{SHOP}/reorder/OT-1"
