"""An order as the shop reports it, and the events that happen to it.

Plain dataclasses carried by Temporal's pydantic data converter; amounts are in
the currency's minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.vocabulary import EventType


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    phone: str = ""
    locale: str = "en"
    timezone: str = "UTC"
    # Orders the customer placed before this one (from the shop): 0 = first-time buyer.
    previous_orders: int = 0


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
    # How many days one unit lasts (catalogue data); 0 = not a consumable.
    consumption_days: int = 0


@dataclass(frozen=True)
class Recommendation:
    """A complementary product for cross-sell, from the shop's catalogue."""

    sku: str
    name: str
    url: str = ""


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
    recommendations: list[Recommendation] = field(default_factory=list)

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
    # For returns, refunds and reorders: the SKUs concerned; empty = the whole order.
    skus: list[str] = field(default_factory=list)
