"""What one message is rendered from, and the variables every channel's templates see.

Email and SMS templates are given the same variables, built here once, so the
two channels can never disagree about a link, a name or a date. Besides
``brand``, ``order``, ``customer``, ``shipment`` and ``links``, every template
sees what the message is about (see ``MessageContext``), already resolved so
templates stay simple:

    first_item        the order's first item (None for an order without items)
    first_name        the first word of the customer's name, for greetings
    focus_item        the item the message is about; the first item when the
                      caller names none (None only for an order without items)
    affected_items    the items a return or refund concerns: those whose SKU is
                      in ``skus``, or every item when ``skus`` is empty
    whole_order       True when the return or refund covers every item
    delivery_address  ``new_address``, else the order's shipping address
    recommendations   at most three named recommendations, each with a safe URL
    locale            the template locale the message is written in
    feedback, new_address, run_out_at, referral_code, skus   as given

and what the ``money``, ``date``, ``datetime`` and ``country`` filters read
(currency, formatting locale, timezone; see ``activities.rendering.formatting``).

Missing *links* get defaults built from the brand's shop URL, because callers
are not expected to know every link a template uses; a link that is not safe to
follow (a ``javascript:`` URL from a carrier, a line break) is replaced by its
default rather than failing the send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from activities.rendering.formatting import (
    CURRENCY_VAR,
    FORMAT_LOCALE_VAR,
    TIMEZONE_VAR,
    formatting_locale,
)
from activities.rendering.text import first_name, is_safe_url
from engine.platform.brand import Brand
from workflows.orders import Address, Feedback, LineItem, Order, Recommendation, Shipment

# Cross-sell shows a few cards, not a catalogue: more would bury the first ones on a phone.
MAX_RECOMMENDATIONS = 3


@dataclass(frozen=True)
class MessageContext:
    """Everything one message is rendered from; only ``order`` is always needed."""

    order: Order
    shipment: Shipment | None = None
    links: dict[str, str] = field(default_factory=dict)
    # The item the message is about (the consumable to reorder, the product to
    # explain); None means the order's first item.
    focus_item: LineItem | None = None
    feedback: Feedback | None = None
    # The SKUs a return or refund concerns; empty means the whole order.
    skus: tuple[str, ...] = ()
    new_address: Address | None = None
    # When the focus item is expected to run out (replenishment reminders).
    run_out_at: datetime | None = None
    referral_code: str = ""
    # Rewrites each link (name, URL) for click tracking (activities.rendering.
    # click_tracking); None: links go into the message as they are.
    track_link: Callable[[str, str], str] | None = None


def template_variables(brand: Brand, context: MessageContext, locale: str) -> dict[str, Any]:
    """The variables a template written in ``locale`` sees for the message ``context``."""
    order = context.order
    customer = order.customer
    focus = _focus_item(context)
    affected_items, whole_order = _affected_items(order, context.skus)
    return {
        "brand": brand,
        "order": order,
        "customer": customer,
        "shipment": context.shipment,
        "first_item": order.items[0] if order.items else None,
        "first_name": first_name(customer.name),
        "links": _links(brand, context, focus),
        "focus_item": focus,
        "feedback": context.feedback,
        "skus": context.skus,
        "affected_items": affected_items,
        "whole_order": whole_order,
        "new_address": context.new_address,
        "delivery_address": context.new_address or order.shipping_address,
        "run_out_at": context.run_out_at,
        "referral_code": context.referral_code,
        "recommendations": _recommendations(brand, order),
        "locale": locale,
        CURRENCY_VAR: order.currency,
        FORMAT_LOCALE_VAR: formatting_locale(customer.locale, locale),
        TIMEZONE_VAR: customer.timezone,
    }


def _focus_item(context: MessageContext) -> LineItem | None:
    if context.focus_item is not None:
        return context.focus_item
    return context.order.items[0] if context.order.items else None


def _affected_items(order: Order, skus: tuple[str, ...]) -> tuple[list[LineItem], bool]:
    """The items a return or refund concerns, and whether that is the whole order."""
    if not skus:
        return list(order.items), True
    wanted = set(skus)
    affected = [item for item in order.items if item.sku in wanted]
    return affected, bool(order.items) and len(affected) == len(order.items)


def _links(brand: Brand, context: MessageContext, focus: LineItem | None) -> dict[str, str]:
    shop = brand.shop_url
    order_url = f"{shop}/orders/{quote(context.order.order_id, safe='')}"
    sku = quote(focus.sku, safe="") if focus and focus.sku else ""
    code = quote(context.referral_code, safe="")
    defaults = {
        "shop": shop,
        "order": order_url,
        "track_order": order_url,
        "help": f"{shop}/help",
        "feedback": f"{order_url}/feedback",
        "review": f"{order_url}/review",
        "reorder": f"{shop}/reorder/{sku}" if sku else f"{order_url}/reorder",
        "guide": f"{shop}/guides/{sku}" if sku else f"{shop}/guides",
        "referral": f"{shop}/referral?code={code}" if code else f"{shop}/referral",
        "unsubscribe": f"{shop}/account/email-preferences",
        "preferences": f"{shop}/account/email-preferences",
    }
    links = dict(defaults)
    if context.shipment and context.shipment.tracking_url:
        links["track_order"] = context.shipment.tracking_url
    links.update(context.links)
    safe = {
        key: url if is_safe_url(url) else defaults.get(key, order_url) for key, url in links.items()
    }
    track = context.track_link
    return safe if track is None else {key: track(key, url) for key, url in safe.items()}


def _recommendations(brand: Brand, order: Order) -> list[Recommendation]:
    # A card without a name would be an empty box; a catalogue URL that is
    # missing or unsafe becomes the product's page in our shop.
    cards: list[Recommendation] = []
    for recommendation in order.recommendations:
        if not recommendation.name.strip():
            continue
        url = recommendation.url
        if not is_safe_url(url):
            url = f"{brand.shop_url}/products/{quote(recommendation.sku, safe='')}"
        cards.append(replace(recommendation, url=url))
        if len(cards) == MAX_RECOMMENDATIONS:
            break
    return cards
