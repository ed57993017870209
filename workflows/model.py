"""Data that crosses the workflow boundary: inputs, events, state and activity contracts.

Plain dataclasses (samples-python style) so Temporal's JSON converter can carry them
and the sandbox can import them without side effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# Activities are called by name so workflow code never imports their I/O modules.
SEND_EMAIL_ACTIVITY = "send_email"


class Stage(StrEnum):
    """Where a journey stands; mirrored in the JourneyStage search attribute."""

    ORDERED = "ordered"
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    ORDER_CANCELLED = "order_cancelled"
    COMPLETED = "completed"
    STOPPED = "stopped"  # cancelled by an operator: nothing more is sent


class EventType(StrEnum):
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURN_REQUESTED = "return_requested"
    RETURNED = "returned"
    REFUNDED = "refunded"
    ADDRESS_CHANGED = "address_changed"
    FEEDBACK = "feedback"
    REORDERED = "reordered"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    phone: str = ""
    locale: str = "en"
    timezone: str = "UTC"


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country_code: str
    line2: str = ""
    region: str = ""


@dataclass(frozen=True)
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    category: str = ""


@dataclass(frozen=True)
class Order:
    """An order as the shop knows it; amounts are in the currency's minor unit."""

    order_id: str
    customer: Customer
    items: list[LineItem]
    currency: str
    subtotal_minor: int
    shipping_minor: int
    tax_minor: int
    total_minor: int
    shipping_address: Address
    placed_at: datetime
    discount_minor: int = 0

    @property
    def item_count(self) -> int:
        return sum(item.quantity for item in self.items)


@dataclass(frozen=True)
class Shipment:
    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""
    estimated_delivery: datetime | None = None


@dataclass(frozen=True)
class Feedback:
    score: int
    comment: str = ""


@dataclass(frozen=True)
class OrderEvent:
    """Something that happened to the order, as reported by a backend service."""

    event_id: str
    type: EventType
    occurred_at: datetime
    shipment: Shipment | None = None
    feedback: Feedback | None = None
    new_address: Address | None = None


@dataclass(frozen=True)
class JourneyInput:
    order: Order


@dataclass(frozen=True)
class SendEmailInput:
    """One email for one step of one journey.

    ``iteration`` tells repeated sends of the same step apart (e.g. reminders);
    together with the journey (workflow) id and step it forms the ledger's
    idempotency key, so a retried activity never sends twice.
    """

    journey_id: str
    step: str
    template: str
    order: Order
    iteration: int = 0
    shipment: Shipment | None = None


@dataclass(frozen=True)
class SentMessage:
    step: str
    channel: Channel
    template: str
    sent_at: datetime
    message_id: str
    status: str = "sent"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "event", "message", "stage", "note"
    detail: str


@dataclass
class JourneyState:
    """The live state answered by the ``state`` query."""

    journey_id: str
    order_id: str
    customer_id: str
    stage: Stage
    waiting_for: list[EventType] = field(default_factory=list)
    next_step: str = ""
    sent: list[SentMessage] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    seen_event_ids: list[str] = field(default_factory=list)
