"""Turning JourneyService requests into domain objects, naming every field that is wrong.

Each ``*_request`` function checks a whole request and raises InvalidRequest with
one violation per bad field; the smaller functions add to a Violations collector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import phonenumbers
from aftercare.v1 import journey_pb2 as pb
from babel import Locale
from babel.numbers import is_currency
from email_validator import EmailNotValidError, validate_email
from google.protobuf.timestamp_pb2 import Timestamp

from engine.platform.rpc import fields
from engine.platform.rpc.violations import FieldViolation, InvalidRequest, Violations, shown
from workflows.ids import ORDER_ID_PATTERN
from workflows.orders import (
    Address,
    Customer,
    Feedback,
    LineItem,
    Order,
    OrderEvent,
    Recommendation,
    Shipment,
)
from workflows.vocabulary import EventType, Stage

MAX_ITEMS = 500
MAX_RECOMMENDATIONS = 10
MAX_PREVIOUS_ORDERS = 1_000_000
MAX_CONSUMPTION_DAYS = 3650
MAX_QUANTITY = 100_000
# Far above any real order, far below int64 overflow when quantities multiply.
MAX_AMOUNT_MINOR = 10**13
# CLDR lists some two-letter codes that are not countries (unknown region,
# European Union, United Nations, pseudo-locales): an address cannot be there.
_NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"})
_COUNTRIES = frozenset(
    code
    for code in Locale("en").territories
    if isinstance(code, str) and len(code) == 2 and code not in _NOT_COUNTRIES
)

EVENT_TYPES: dict[int, EventType] = {
    pb.EVENT_TYPE_SHIPPED: EventType.SHIPPED,
    pb.EVENT_TYPE_OUT_FOR_DELIVERY: EventType.OUT_FOR_DELIVERY,
    pb.EVENT_TYPE_DELIVERED: EventType.DELIVERED,
    pb.EVENT_TYPE_CANCELLED: EventType.CANCELLED,
    pb.EVENT_TYPE_RETURN_REQUESTED: EventType.RETURN_REQUESTED,
    pb.EVENT_TYPE_RETURNED: EventType.RETURNED,
    pb.EVENT_TYPE_REFUNDED: EventType.REFUNDED,
    pb.EVENT_TYPE_ADDRESS_CHANGED: EventType.ADDRESS_CHANGED,
    pb.EVENT_TYPE_FEEDBACK: EventType.FEEDBACK,
    pb.EVENT_TYPE_REORDERED: EventType.REORDERED,
}

STAGES: dict[int, Stage] = {
    pb.JOURNEY_STAGE_ORDERED: Stage.ORDERED,
    pb.JOURNEY_STAGE_SHIPPED: Stage.SHIPPED,
    pb.JOURNEY_STAGE_OUT_FOR_DELIVERY: Stage.OUT_FOR_DELIVERY,
    pb.JOURNEY_STAGE_DELIVERED: Stage.DELIVERED,
    pb.JOURNEY_STAGE_ORDER_CANCELLED: Stage.ORDER_CANCELLED,
    pb.JOURNEY_STAGE_COMPLETED: Stage.COMPLETED,
    pb.JOURNEY_STAGE_STOPPED: Stage.STOPPED,
    pb.JOURNEY_STAGE_RETURNED: Stage.RETURNED,
    pb.JOURNEY_STAGE_REPLENISHMENT: Stage.REPLENISHMENT,
}


def order_id(v: Violations, path: str, value: str) -> str:
    if not value:
        v.add(path, "is required")
    elif not ORDER_ID_PATTERN.fullmatch(value):
        v.add(path, "must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit")
    return value


def _timestamp(v: Violations, path: str, ts: Timestamp, has: bool, default: datetime) -> datetime:
    if not has:
        return default
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except ValueError:
        # Seconds outside years 1-9999 or nanos outside 0-999,999,999.
        v.add(path, "is not a valid timestamp")
        return default


def _email(v: Violations, path: str, value: str) -> str:
    value = value.strip()
    if not value:
        v.add(path, "is required")
        return value
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as err:
        v.add(path, f"is not a valid email address: {err}")
        return value


def _phone(v: Violations, path: str, value: str, region: str) -> str:
    value = value.strip()
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, region or None)
    except phonenumbers.NumberParseException as err:
        v.add(path, f"is not a phone number: {err}")
        return value
    if not phonenumbers.is_valid_number(number):
        v.add(path, "is not a valid phone number")
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _country(v: Violations, path: str, value: str) -> str:
    code = value.strip().upper()
    if not code:
        v.add(path, "is required")
    elif code not in _COUNTRIES:
        v.add(path, f"is not an ISO 3166-1 alpha-2 country code: {shown(value)}")
    return code


def _url(v: Violations, path: str, value: str) -> str:
    value = value.strip()
    if value:
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unclosed IPv6 bracket: "https://[::1"
            v.add(path, "must be an http(s) URL of at most 2000 characters")
            return value
        if parts.scheme not in {"http", "https"} or not parts.netloc or len(value) > 2000:
            v.add(path, "must be an http(s) URL of at most 2000 characters")
    return value


def address(v: Violations, path: str, message: pb.Address) -> Address:
    return Address(
        name=v.text(f"{path}.name", message.name),
        line1=v.text(f"{path}.line1", message.line1),
        line2=v.text(f"{path}.line2", message.line2, required=False),
        city=v.text(f"{path}.city", message.city),
        region=v.text(f"{path}.region", message.region, required=False),
        postal_code=v.text(
            f"{path}.postal_code", message.postal_code, required=False, max_length=20
        ),
        country_code=_country(v, f"{path}.country_code", message.country_code),
    )


def _customer(v: Violations, message: pb.Customer, country: str) -> Customer:
    path = "order.customer"
    return Customer(
        id=v.customer_id(f"{path}.id", message.id),
        name=v.text(f"{path}.name", message.name),
        email=_email(v, f"{path}.email", message.email),
        phone=_phone(v, f"{path}.phone", message.phone, country),
        locale=fields.locale(v, f"{path}.locale", message.locale),
        timezone=fields.timezone(v, f"{path}.timezone", message.timezone),
        previous_orders=_bounded(
            v, f"{path}.previous_orders", message.previous_orders, 0, MAX_PREVIOUS_ORDERS
        ),
    )


def _bounded(v: Violations, path: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        v.add(path, f"must be between {low} and {high}")
    return value


def _recommendations(v: Violations, messages: list[pb.Recommendation]) -> list[Recommendation]:
    if len(messages) > MAX_RECOMMENDATIONS:
        v.add("order.recommendations", f"must list at most {MAX_RECOMMENDATIONS} products")
        return []
    return [
        Recommendation(
            sku=v.identifier(f"order.recommendations[{i}].sku", m.sku, max_length=64),
            name=v.text(f"order.recommendations[{i}].name", m.name),
            url=_url(v, f"order.recommendations[{i}].url", m.url),
        )
        for i, m in enumerate(messages)
    ]


def _items(v: Violations, messages: list[pb.LineItem]) -> list[LineItem]:
    if not messages:
        v.add("order.items", "must list at least one item")
    elif len(messages) > MAX_ITEMS:
        v.add("order.items", f"must list at most {MAX_ITEMS} items")
        return []
    items = []
    for index, message in enumerate(messages):
        path = f"order.items[{index}]"
        if not 1 <= message.quantity <= MAX_QUANTITY:
            v.add(f"{path}.quantity", f"must be between 1 and {MAX_QUANTITY}")
        if not 0 <= message.unit_price_minor <= MAX_AMOUNT_MINOR:
            v.add(f"{path}.unit_price_minor", f"must be between 0 and {MAX_AMOUNT_MINOR}")
        items.append(
            LineItem(
                sku=v.identifier(f"{path}.sku", message.sku, max_length=64),
                name=v.text(f"{path}.name", message.name),
                category=v.text(
                    f"{path}.category", message.category, required=False, max_length=64
                ),
                quantity=message.quantity,
                unit_price_minor=message.unit_price_minor,
                consumption_days=_bounded(
                    v, f"{path}.consumption_days", message.consumption_days, 0, MAX_CONSUMPTION_DAYS
                ),
            )
        )
    return items


def valid_order(message: pb.Order, *, now: datetime) -> Order:
    """``order`` for a message that must be valid (a sample, a file, a bench's
    order): InvalidRequest naming each bad field otherwise."""
    v = Violations()
    converted = order(v, message, now=now)
    v.raise_if_any()
    return converted


def order(v: Violations, message: pb.Order, *, now: datetime) -> Order:
    # The id first: when many fields are wrong and the list is capped, the caller
    # still learns whether the order itself was named correctly.
    the_order_id = order_id(v, "order.order_id", message.order_id)
    if not message.HasField("shipping_address"):
        v.add("order.shipping_address", "is required")
    if not message.HasField("customer"):
        v.add("order.customer", "is required")
    shipping = address(v, "order.shipping_address", message.shipping_address)
    customer = _customer(v, message.customer, shipping.country_code)
    items = _items(v, list(message.items))
    currency = message.currency.strip().upper()
    if not currency:
        v.add("order.currency", "is required")
    elif not is_currency(currency):
        v.add("order.currency", f"is not an ISO 4217 currency code: {shown(message.currency)}")
    amounts = {
        name: v.amount(f"order.{name}", getattr(message, name))
        for name in (
            "subtotal_minor",
            "shipping_minor",
            "tax_minor",
            "discount_minor",
            "total_minor",
        )
    }
    for name, value in amounts.items():
        if value > MAX_AMOUNT_MINOR:
            v.add(f"order.{name}", f"must be at most {MAX_AMOUNT_MINOR}")
    items_sum = sum(item.quantity * item.unit_price_minor for item in items)
    subtotal = amounts["subtotal_minor"] or items_sum
    if subtotal != items_sum:
        v.add("order.subtotal_minor", f"must equal the items' sum ({items_sum})")
    if amounts["discount_minor"] > subtotal:
        # A discount comes off the goods; more than they cost would make the
        # shipping (or the total) negative, which no message can show sensibly.
        v.add("order.discount_minor", f"must be at most the subtotal ({subtotal})")
    base = subtotal + amounts["shipping_minor"] - amounts["discount_minor"]
    # Prices may include tax (EU) or not (US): the total may be either.
    total = amounts["total_minor"] or base + amounts["tax_minor"]
    if total not in {base, base + amounts["tax_minor"]}:
        v.add(
            "order.total_minor",
            "must equal subtotal + shipping - discount, plus tax unless prices include it",
        )
    return Order(
        order_id=the_order_id,
        customer=customer,
        items=items,
        currency=currency,
        subtotal_minor=subtotal,
        shipping_minor=amounts["shipping_minor"],
        tax_minor=amounts["tax_minor"],
        discount_minor=amounts["discount_minor"],
        total_minor=total,
        shipping_address=shipping,
        placed_at=_timestamp(
            v, "order.placed_at", message.placed_at, message.HasField("placed_at"), now
        ),
        recommendations=_recommendations(v, list(message.recommendations)),
    )


def event(v: Violations, message: pb.OrderEvent, *, now: datetime) -> OrderEvent:
    event_type = EVENT_TYPES.get(message.type)
    if event_type is None:
        v.add("event.type", f"must be a known event type, got {message.type}")
    details = message.WhichOneof("details")
    shipment = feedback = new_address = None
    if details == "shipment":
        s = message.shipment
        shipment = Shipment(
            carrier=v.text("event.shipment.carrier", s.carrier, required=False, max_length=100),
            tracking_number=v.text(
                "event.shipment.tracking_number", s.tracking_number, required=False, max_length=100
            ),
            tracking_url=_url(v, "event.shipment.tracking_url", s.tracking_url),
            estimated_delivery=(
                _timestamp(
                    v,
                    "event.shipment.estimated_delivery",
                    s.estimated_delivery,
                    True,
                    now,
                )
                if s.HasField("estimated_delivery")
                else None
            ),
        )
    elif details == "feedback":
        if not 0 <= message.feedback.score <= 10:
            v.add("event.feedback.score", "must be between 0 and 10")
        feedback = Feedback(
            score=message.feedback.score,
            comment=message.feedback.comment.strip()[:5000],
        )
    elif details == "new_address":
        new_address = address(v, "event.new_address", message.new_address)
    if event_type == EventType.FEEDBACK and feedback is None:
        v.add("event.feedback", "is required for a feedback event")
    if event_type == EventType.ADDRESS_CHANGED and new_address is None:
        v.add("event.new_address", "is required for an address_changed event")
    if len(message.skus) > MAX_ITEMS:
        v.add("event.skus", f"must list at most {MAX_ITEMS} SKUs")
    skus = [
        v.identifier(f"event.skus[{i}]", sku, max_length=64)
        for i, sku in enumerate(message.skus[:MAX_ITEMS])
    ]
    return OrderEvent(
        event_id=v.identifier("event.event_id", message.event_id),
        type=event_type or EventType.SHIPPED,
        occurred_at=_timestamp(
            v, "event.occurred_at", message.occurred_at, message.HasField("occurred_at"), now
        ),
        shipment=shipment,
        feedback=feedback,
        new_address=new_address,
        skus=skus,
    )


MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_TOKEN_BYTES = 4096
MAX_REASON_LENGTH = 500


@dataclass(frozen=True)
class EventRequest:
    order_id: str
    event: OrderEvent
    order: Order | None  # given, the event may start the journey


@dataclass(frozen=True)
class ListRequest:
    customer_id: str
    stage: Stage | None
    page_size: int
    page_token: bytes


def start_request(request: pb.StartJourneyRequest, *, now: datetime) -> Order:
    v = Violations()
    if not request.HasField("order"):
        v.add("order", "is required")
        v.raise_if_any()
    converted = order(v, request.order, now=now)
    v.raise_if_any()
    return converted


def event_request(request: pb.RecordEventRequest, *, now: datetime) -> EventRequest:
    v = Violations()
    wanted = order_id(v, "order_id", request.order_id)
    if not request.HasField("event"):
        v.add("event", "is required")
        v.raise_if_any()
    converted = event(v, request.event, now=now)
    given = None
    if request.HasField("order"):
        given = order(v, request.order, now=now)
        if request.order.order_id != request.order_id:
            v.add("order.order_id", "must equal order_id")
    v.raise_if_any()
    return EventRequest(wanted, converted, given)


def order_id_request(value: str) -> str:
    v = Violations()
    wanted = order_id(v, "order_id", value)
    v.raise_if_any()
    return wanted


def cancel_request(request: pb.CancelJourneyRequest) -> tuple[str, str]:
    """The order id and the operator's reason."""
    v = Violations()
    wanted = order_id(v, "order_id", request.order_id)
    reason = v.text("reason", request.reason, required=False, max_length=MAX_REASON_LENGTH)
    v.raise_if_any()
    return wanted, reason


def list_request(request: pb.ListJourneysRequest) -> ListRequest:
    v = Violations()
    customer_id = v.customer_id("customer_id", request.customer_id) if request.customer_id else ""
    stage = None
    if request.stage != pb.JOURNEY_STAGE_UNSPECIFIED:
        stage = STAGES.get(request.stage)
        if stage is None:
            v.add("stage", f"must be a known journey stage, got {request.stage}")
    if not 0 <= request.page_size <= MAX_PAGE_SIZE:
        v.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    if len(request.page_token) > MAX_PAGE_TOKEN_BYTES:
        v.add("page_token", "is not a token this server issued")
    v.raise_if_any()
    return ListRequest(
        customer_id, stage, request.page_size or DEFAULT_PAGE_SIZE, request.page_token
    )


def bad_page_token() -> InvalidRequest:
    return InvalidRequest([FieldViolation("page_token", "is not a token this server issued")])
