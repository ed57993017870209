"""Shopify's JSON as the API's requests, checked by the API's own parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aftercare.v1 import journey_pb2 as pb

from engine.integrations.shopify.fulfillments import fulfillment_request, refund_request
from engine.integrations.shopify.orders import (
    cancellation_request,
    order_request,
    shopify_field,
)
from engine.integrations.shopify.payload import Payload
from engine.integrations.shopify.signature import ShopSecrets, sign
from engine.journeys import parsing
from engine.platform.rpc.violations import InvalidRequest, Violations
from tests.engine.integrations.shopify_payloads import (
    fulfillment,
    order_cancelled,
    order_created,
    refund,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_an_order_maps_to_a_valid_start_with_shopify_arithmetic() -> None:
    v = Violations()
    request = order_request(Payload(order_created(5987402154321), v))
    assert v.items == []
    order = parsing.start_request(request, now=NOW)
    assert order.order_id == "5987402154321"
    assert order.customer.id == "shopify-7211809587345"
    assert order.customer.name == "Maya Lindqvist"
    assert order.customer.email == "maya.lindqvist@example.com"
    # No phone on the order or the customer: the shipping address's.
    assert order.customer.phone == "+17185550142"
    assert [(i.sku, i.quantity, i.unit_price_minor) for i in order.items] == [
        ("BEANS-250", 2, 2400),
        # Shopify allows a line without a SKU: named by its variant.
        ("variant-45012233478334", 1, 5000),
    ]
    assert (order.subtotal_minor, order.discount_minor, order.shipping_minor) == (9800, 1000, 100)
    assert (order.tax_minor, order.total_minor, order.currency) == (718, 9618, "USD")
    assert order.shipping_address.line1 == "240 Kent Avenue"
    assert order.shipping_address.region == "New York"
    assert order.shipping_address.country_code == "US"
    assert order.placed_at == datetime(2026, 11, 30, 15, 12, 38, tzinfo=UTC)


def test_a_guest_checkout_gets_an_id_from_the_order() -> None:
    body = order_created(1234567890123)
    del body["customer"]
    request = order_request(Payload(body, Violations()))
    order = parsing.start_request(request, now=NOW)
    assert order.customer.id == "shopify-guest-1234567890123"
    assert order.customer.name == "Maya Lindqvist"  # from the shipping address


def test_amounts_use_the_currencys_own_decimals() -> None:
    body = order_created(1234567890123)
    body["currency"] = "JPY"
    for line in body["line_items"]:
        line["price"] = "1200"
    body["total_line_items_price"] = "3600"
    body["total_discounts"] = "0"
    body["shipping_lines"][0]["price"] = "500"
    body["total_tax"] = "0"
    body["total_price"] = "4100"
    order = parsing.start_request(order_request(Payload(body, Violations())), now=NOW)
    assert (order.subtotal_minor, order.total_minor, order.currency) == (3600, 4100, "JPY")

    body["total_price"] = "4100.50"
    v = Violations()
    order_request(Payload(body, v))
    assert [item.field for item in v.items] == ["total_price"]


def test_a_wrong_field_is_named_in_shopifys_terms() -> None:
    body = order_created(1234567890123)
    body["line_items"][1]["quantity"] = 0
    body["email"] = body["contact_email"] = "not-an-address"
    body["customer"]["email"] = None
    request = order_request(Payload(body, Violations()))
    with pytest.raises(InvalidRequest) as err:
        parsing.start_request(request, now=NOW)
    named = {shopify_field(v.field) for v in err.value.violations}
    assert {"line_items[1].quantity", "email"} <= named


def test_kinds_of_value_shopify_never_sends_are_named() -> None:
    body = order_created(1234567890123)
    body["id"] = None
    body["line_items"][0]["price"] = "twelve"
    body["created_at"] = "yesterday"
    v = Violations()
    order_request(Payload(body, v))
    assert [item.field for item in v.items] == ["id", "line_items[0].price", "created_at"]


def test_a_cancellation_is_one_event_per_order() -> None:
    request = cancellation_request(Payload(order_cancelled(42), Violations()))
    wanted = parsing.event_request(request, now=NOW)
    assert wanted.order_id == "42"
    assert wanted.event.event_id == "shopify-cancelled-42"
    assert wanted.event.type.value == "cancelled"
    assert wanted.event.occurred_at == datetime(2026, 11, 30, 16, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, pb.EVENT_TYPE_SHIPPED),
        ("confirmed", pb.EVENT_TYPE_SHIPPED),
        ("in_transit", pb.EVENT_TYPE_SHIPPED),
        ("out_for_delivery", pb.EVENT_TYPE_OUT_FOR_DELIVERY),
        ("delivered", pb.EVENT_TYPE_DELIVERED),
        ("attempted_delivery", None),
        ("failure", None),
    ],
)
def test_fulfillment_statuses(status: str | None, expected: int | None) -> None:
    request = fulfillment_request(Payload(fulfillment(42, 7, status), Violations()))
    if expected is None:
        assert request is None
        return
    assert request is not None
    assert request.event.type == expected
    wanted = parsing.event_request(request, now=NOW)
    assert wanted.order_id == "42"
    if expected == pb.EVENT_TYPE_SHIPPED:
        assert wanted.event.shipment is not None
        assert wanted.event.shipment.carrier == "UPS"
        assert wanted.event.shipment.tracking_number == "1Z999AA10123456784"
        # A create and an update saying the same are one event to the journey.
        assert wanted.event.event_id == "shopify-fulfillment-7-shipped"


def test_a_fulfillment_not_yet_sent_is_no_event() -> None:
    body = fulfillment(42, 7)
    body["status"] = "pending"
    assert fulfillment_request(Payload(body, Violations())) is None


def test_a_refund_of_line_items_names_their_skus() -> None:
    request = refund_request(Payload(refund(42, 9), Violations()))
    assert request is not None
    wanted = parsing.event_request(request, now=NOW)
    assert wanted.event.type.value == "refunded"
    assert wanted.event.skus == ["variant-45012233478334"]
    assert wanted.event.event_id == "shopify-refund-9"


def test_a_refund_of_shipping_only_is_no_event() -> None:
    body = refund(42, 9)
    body["refund_line_items"] = []
    assert refund_request(Payload(body, Violations())) is None


def test_the_signature_is_the_shops_hmac_of_the_raw_body() -> None:
    secrets = ShopSecrets.parse("a.myshopify.com=first-secret-0123456789, b.myshopify.com=other-9")
    body = b'{"id": 1}'
    good = sign("first-secret-0123456789", body)
    assert secrets.verify("a.myshopify.com", body, good)
    assert secrets.verify("A.MyShopify.com", body, good)
    assert not secrets.verify("b.myshopify.com", body, good)  # another shop's secret
    assert not secrets.verify("c.myshopify.com", body, good)  # an unknown shop
    assert not secrets.verify("a.myshopify.com", body + b" ", good)  # altered
    assert not secrets.verify("a.myshopify.com", body, "not base64!")
    assert not secrets.verify("a.myshopify.com", body, "")
    every_shop = ShopSecrets.parse("*=app-secret-0123456789")
    assert every_shop.verify("any.myshopify.com", body, sign("app-secret-0123456789", body))


def test_the_secrets_setting_must_pair_shops_with_secrets() -> None:
    with pytest.raises(ValueError, match="shop-domain=secret"):
        ShopSecrets.parse("a.myshopify.com")
    with pytest.raises(ValueError, match="shop-domain=secret"):
        ShopSecrets.parse("=secret")
