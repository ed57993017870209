"""A brand, an order and message contexts shared by the email tests, plus small helpers."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from activities.email.rendering import EmailRenderer, RenderedEmail
from activities.rendering.context import MessageContext
from engine.platform.brand import Brand
from workflows.orders import Address, Customer, Feedback, LineItem, Order, Recommendation, Shipment

SHOP = "https://shop.test"

BRAND = Brand(
    name="Nordlicht",
    sender_name="Nordlicht Store",
    logo_url=f"{SHOP}/logo.png",
    primary_color="#0f766e",
    text_color="#111827",
    background_color="#f3f4f6",
    footer_address="Nordlicht GmbH, Hauptstraße 5, 10115 Berlin",
    support_email="help@shop.test",
    shop_url=SHOP,
)

SHIPMENT = Shipment(
    carrier="DHL",
    tracking_number="JD0146000123",
    tracking_url="https://carrier.test/track?n=JD0146000123",
    estimated_delivery=datetime(2025, 3, 5, 12, 0, tzinfo=UTC),
)

# A shirt, then a consumable: the second item is what replenishment and
# product education are about in the full context.
ITEM_NAMES = ("Linen shirt", "Espresso beans")
ITEM_SKUS = ("SH-1", "ES-1")

RECOMMENDATIONS = [
    Recommendation(sku="GR-1", name="Burr grinder", url="https://shop.test/p/burr-grinder"),
    Recommendation(sku="FR-1", name="Milk frother"),
    Recommendation(sku="CA-1", name="Travel cup", url="https://shop.test/p/travel-cup"),
    # A fourth one: cross-sell shows three at most.
    Recommendation(sku="DE-1", name="Descaler"),
]

NEW_ADDRESS = Address(
    name="Jane Doe",
    line1="Schönhauser Allee 80",
    city="Berlin",
    postal_code="10439",
    country_code="DE",
)

# 22:30 UTC on 14 April is already 15 April in Berlin, the customer's timezone.
RUN_OUT_AT = datetime(2025, 4, 14, 22, 30, tzinfo=UTC)
REFERRAL_CODE = "JANE-10"


def make_order(
    *,
    name: str = "Jane Doe",
    locale: str = "en",
    order_id: str = "A-10023",
    items: list[LineItem] | None = None,
    currency: str = "EUR",
    discount_minor: int = 525,
    recommendations: list[Recommendation] | None = None,
) -> Order:
    customer = Customer(
        id="c-1", name=name, email="jane@example.test", locale=locale, timezone="Europe/Berlin"
    )
    return Order(
        order_id=order_id,
        customer=customer,
        items=items
        or [
            LineItem(
                sku=ITEM_SKUS[0],
                name=ITEM_NAMES[0],
                quantity=2,
                unit_price_minor=3900,
                category="apparel",
            ),
            LineItem(
                sku=ITEM_SKUS[1],
                name=ITEM_NAMES[1],
                quantity=1,
                unit_price_minor=1250,
                category="coffee",
                consumption_days=21,
            ),
        ],
        currency=currency,
        subtotal_minor=9050,
        shipping_minor=495,
        tax_minor=1525,
        total_minor=9050 + 495 - discount_minor,  # prices include tax
        discount_minor=discount_minor,
        shipping_address=Address(
            name=name,
            line1="Kastanienallee 12",
            line2="3rd floor",
            city="Berlin",
            postal_code="10435",
            country_code="DE",
        ),
        placed_at=datetime(2025, 3, 2, 10, 15, tzinfo=UTC),
        recommendations=list(RECOMMENDATIONS if recommendations is None else recommendations),
    )


def full_context(order: Order, **changes: Any) -> MessageContext:
    """Everything a journey can tell a message: the last item in focus, feedback, a new
    address, a run-out date and a referral code; ``changes`` override any field."""
    context = MessageContext(
        order=order,
        shipment=SHIPMENT,
        focus_item=order.items[-1] if order.items else None,
        feedback=Feedback(score=4, comment="The parcel arrived late and the box was crushed."),
        new_address=NEW_ADDRESS,
        run_out_at=RUN_OUT_AT,
        referral_code=REFERRAL_CODE,
    )
    return replace(context, **changes)


def render(
    renderer: EmailRenderer,
    template: str,
    order: Order,
    shipment: Shipment | None = SHIPMENT,
    links: dict[str, str] | None = None,
) -> RenderedEmail:
    return renderer.render(
        template, MessageContext(order=order, shipment=shipment, links=links or {})
    )


def render_full(
    renderer: EmailRenderer, template: str, order: Order, **changes: Any
) -> RenderedEmail:
    return renderer.render(template, full_context(order, **changes))


def cta_tag(html: str, href: str) -> str:
    """The opening <a> tag of the bulletproof button pointing at ``href``."""
    for tag in buttons(html):
        if f'href="{href}"' in tag:
            return tag
    raise AssertionError(f"no CTA button to {href}")


def buttons(html: str) -> list[str]:
    """The opening <a> tags of every bulletproof button, in order."""
    tags: list[str] = re.findall(r"<a\b[^>]*>", html)
    return [tag for tag in tags if 'class="button-link"' in tag]


def word_count(text: str) -> int:
    return len(text.split())
