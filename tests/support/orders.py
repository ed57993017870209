"""Domain orders (``workflows.model.Order``) for tests that call activities directly."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support.ids import new_order_id
from workflows.orders import Address, Customer, LineItem, Order


def domain_order(
    *,
    order_id: str | None = None,
    name: str = "Jane Doe",
    email: str = "jane.doe@example.test",
    locale: str = "en",
    currency: str = "EUR",
    timezone: str = "Europe/Berlin",
    customer_id: str | None = None,
    phone: str = "",
    items: list[LineItem] | None = None,
) -> Order:
    """A small, consistent order (two apparel/home items unless given); totals add up
    (prices include tax). Each order has its own customer unless one is given: tests
    sharing a database would otherwise share one customer's frequency cap."""
    items = items or [
        LineItem(
            sku="SH-1", name="Linen shirt", category="apparel", quantity=2, unit_price_minor=3900
        ),
        LineItem(
            sku="MG-1", name="Ceramic mug", category="home", quantity=1, unit_price_minor=1250
        ),
    ]
    subtotal = sum(item.quantity * item.unit_price_minor for item in items)
    shipping = 495
    return Order(
        order_id=order_id or new_order_id("ORD"),
        customer=Customer(
            id=customer_id or new_order_id("cus"),
            name=name,
            email=email,
            phone=phone,
            locale=locale,
            timezone=timezone,
        ),
        items=items,
        currency=currency,
        subtotal_minor=subtotal,
        shipping_minor=shipping,
        tax_minor=1525,
        total_minor=subtotal + shipping,
        shipping_address=Address(
            name=name,
            line1="Kastanienallee 12",
            city="Berlin",
            postal_code="10435",
            country_code="DE",
        ),
        placed_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    )


COFFEE = LineItem(
    sku="COF-ETH-500",
    name="Ethiopia beans 500 g",
    category="coffee",
    quantity=2,
    unit_price_minor=1450,
    consumption_days=14,
)
