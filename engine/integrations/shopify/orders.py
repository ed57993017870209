"""Shopify's order JSON (``orders/create``, ``orders/cancelled``) as the API's requests.

The amounts map so that the API's own arithmetic holds for what Shopify computed:
the subtotal is ``total_line_items_price`` (line prices before discounts, as the
API's items carry them), the discount ``total_discounts``, shipping the sum of the
``shipping_lines``, tax ``total_tax`` and the total ``total_price``; Shopify's
``taxes_included`` is the API's "prices include tax". Amounts are in the shop's
currency (``currency``), not the customer's presentment currency.
"""

from __future__ import annotations

import re

from aftercare.v1 import journey_pb2 as pb

from engine.integrations.shopify.payload import Payload
from engine.platform.rpc.violations import FieldViolation

# Shopify's customer ids have 13 digits or more, which a bare id would share with
# phone numbers (refused as customer ids): a prefix keeps them opaque and says where
# they come from.
CUSTOMER_ID_PREFIX = "shopify-"


def order_request(body: Payload) -> pb.StartJourneyRequest:
    return pb.StartJourneyRequest(order=order(body))


def order(body: Payload) -> pb.Order:
    order_id = body.identifier("id")
    currency = body.text("currency")
    shipping_lines = body.children("shipping_lines")
    message = pb.Order(
        order_id=order_id,
        customer=_customer(body, order_id),
        items=[_item(line, currency) for line in body.children("line_items")],
        currency=currency,
        subtotal_minor=body.money("total_line_items_price", currency),
        shipping_minor=sum(line.money("price", currency) for line in shipping_lines),
        tax_minor=body.money("total_tax", currency),
        discount_minor=body.money("total_discounts", currency),
        total_minor=body.money("total_price", currency),
    )
    # Digital goods ship nowhere: the billing address stands in for the customer's.
    address = body.child("shipping_address") or body.child("billing_address")
    if address is not None:
        message.shipping_address.CopyFrom(_address(address))
    placed = body.timestamp("created_at")
    if placed is not None:
        message.placed_at.CopyFrom(placed)
    return message


def cancellation_request(body: Payload) -> pb.RecordEventRequest:
    order_id = body.identifier("id")
    event = pb.OrderEvent(
        # Derived from the order, not the delivery: every delivery of the same
        # cancellation is one event to the journey.
        event_id=f"shopify-cancelled-{order_id}",
        type=pb.EVENT_TYPE_CANCELLED,
    )
    cancelled = body.timestamp("cancelled_at")
    if cancelled is not None:
        event.occurred_at.CopyFrom(cancelled)
    return pb.RecordEventRequest(order_id=order_id, event=event)


def line_item_sku(line: Payload) -> str:
    """The line's SKU; a line without one (Shopify allows that) is named by its
    variant or product id."""
    sku = line.text("sku").strip()
    if sku:
        return sku
    if line.has("variant_id"):
        return f"variant-{line.text('variant_id')}"
    if line.has("product_id"):
        return f"product-{line.text('product_id')}"
    return ""


def _customer(body: Payload, order_id: str) -> pb.Customer:
    customer = body.child("customer")
    address = body.child("shipping_address") or body.child("billing_address")
    if customer is not None and customer.has("id"):
        customer_id = f"{CUSTOMER_ID_PREFIX}{customer.text('id')}"
    else:
        # A guest checkout: the order is its customer's only known purchase.
        customer_id = f"{CUSTOMER_ID_PREFIX}guest-{order_id}"
    name = ""
    if customer is not None:
        name = " ".join(p for p in (customer.text("first_name"), customer.text("last_name")) if p)
    if not name and address is not None:
        name = _person(address)
    email = body.text("email") or body.text("contact_email")
    phone = body.text("phone")
    if customer is not None:
        email = email or customer.text("email")
        phone = phone or customer.text("phone")
    if not phone and address is not None:
        phone = address.text("phone")
    return pb.Customer(
        id=customer_id,
        name=name,
        email=email,
        phone=phone,
        locale=body.text("customer_locale"),
    )


def _person(address: Payload) -> str:
    return address.text("name") or " ".join(
        p for p in (address.text("first_name"), address.text("last_name")) if p
    )


def _item(line: Payload, currency: str) -> pb.LineItem:
    return pb.LineItem(
        sku=line_item_sku(line),
        name=line.text("title") or line.text("name"),
        quantity=line.integer("quantity"),
        unit_price_minor=line.money("price", currency),
    )


def _address(address: Payload) -> pb.Address:
    return pb.Address(
        name=_person(address),
        line1=address.text("address1"),
        line2=address.text("address2"),
        city=address.text("city"),
        region=address.text("province"),
        postal_code=address.text("zip"),
        country_code=address.text("country_code"),
    )


# The API names the fields of its own requests; a shop's developer knows Shopify's.
_ORDER_FIELDS = {
    "order": "",
    "order.order_id": "id",
    "order.customer": "customer",
    "order.customer.id": "customer.id",
    "order.customer.name": "customer.first_name",
    "order.customer.email": "email",
    "order.customer.phone": "phone",
    "order.customer.locale": "customer_locale",
    "order.items": "line_items",
    "order.currency": "currency",
    "order.subtotal_minor": "total_line_items_price",
    "order.shipping_minor": "shipping_lines",
    "order.tax_minor": "total_tax",
    "order.discount_minor": "total_discounts",
    "order.total_minor": "total_price",
    "order.shipping_address": "shipping_address",
    "order.placed_at": "created_at",
    "event.shipment.carrier": "tracking_company",
    "event.shipment.tracking_number": "tracking_number",
    "event.shipment.tracking_url": "tracking_url",
}
_ITEM_FIELDS = {"sku": "sku", "name": "title", "quantity": "quantity", "unit_price_minor": "price"}
_ADDRESS_FIELDS = {
    "name": "name",
    "line1": "address1",
    "line2": "address2",
    "city": "city",
    "region": "province",
    "postal_code": "zip",
    "country_code": "country_code",
}
_ITEM_PATH = re.compile(r"order\.items\[(\d+)\]\.(\w+)")
_ADDRESS_PATH = re.compile(r"order\.shipping_address\.(\w+)")


def shopify_field(api_field: str) -> str:
    """The Shopify field behind an API field a violation names (itself when none)."""
    if api_field in _ORDER_FIELDS:
        return _ORDER_FIELDS[api_field] or api_field
    if match := _ITEM_PATH.fullmatch(api_field):
        index, name = match.groups()
        return f"line_items[{index}].{_ITEM_FIELDS.get(name, name)}"
    if match := _ADDRESS_PATH.fullmatch(api_field):
        return f"shipping_address.{_ADDRESS_FIELDS.get(match.group(1), match.group(1))}"
    return api_field


def in_shopify_terms(violations: list[FieldViolation]) -> list[FieldViolation]:
    return [FieldViolation(shopify_field(v.field), v.description) for v in violations]
