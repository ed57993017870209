"""Turn an order (and maybe a shipment) into a localised subject, preheader, text and HTML.

Template scheme, under ``templates/`` next to this module::

    layout.html.j2           brand shell every HTML email extends: logo, colours,
                             hidden preheader, footer (address, help, preferences)
    layout.txt.j2            plain-text shell with the shared footer
    macros.html.j2           bulletproof CTA button, item, product card and address
                             blocks (HTML)
    macros.txt.j2            the same blocks for plain text
    <locale>/base.html.j2    the locale's footer wording; extends layout.html.j2
    <locale>/base.txt.j2     the same for text; extends layout.txt.j2
    <locale>/<name>.txt.j2   blocks ``subject``, ``preheader`` and ``body``
    <locale>/<name>.html.j2  block ``content``; receives ``subject`` and ``preheader``

Subject and preheader live in the ``.txt.j2`` file because, like the text body,
they are plain text: only ``*.html.j2`` templates are autoescaped. Each
``.txt.j2`` block is rendered on its own, so the layout never prints them.

Customer data (names, item names, addresses) only ever reaches templates as
variables, never as template source, so ``{{ 7*7 }}`` in a name stays literal.
``StrictUndefined`` makes a typo in a template fail loudly instead of sending a
blank; missing *links*, on the other hand, get defaults built from the brand's
shop URL, because callers are not expected to know every link a template uses.

Besides ``order``, ``customer``, ``shipment``, ``links`` and ``brand``, every
template sees what the message is about (see ``EmailContext``), already resolved
so templates stay simple:

    focus_item        the item the message is about; the first item when the
                      caller names none (None only for an order without items)
    affected_items    the items a return or refund concerns: those whose SKU is
                      in ``skus``, or every item when ``skus`` is empty
    whole_order       True when the return or refund covers every item
    delivery_address  ``new_address``, else the order's shipping address
    recommendations   at most three named recommendations, each with a safe URL
    feedback, new_address, run_out_at, referral_code, skus   as given
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import css_inline
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    select_autoescape,
)

from activities.rendering.formatting import (
    CURRENCY_VAR,
    DEFAULT_LOCALE,
    FORMAT_LOCALE_VAR,
    TIMEZONE_VAR,
    formatting_locale,
    register_filters,
    resolve_locale,
)
from engine.platform.brand import Brand
from workflows.orders import Address, Feedback, LineItem, Order, Recommendation, Shipment

TEMPLATE_DIR = Path(__file__).parent / "templates"

# The messages the journey can send; every one exists in every supported locale.
TEMPLATE_NAMES: tuple[str, ...] = (
    "order_confirmation",
    "shipping_notice",
    "out_for_delivery",
    "delivered",
    "order_cancelled",
    "thank_you",
    "feedback_request",
    "feedback_reminder",
    "detractor_follow_up",
    "passive_thanks",
    "review_request",
    "shipping_delay",
    "address_changed",
    "product_education",
    "cross_sell",
    "replenishment_reminder",
    "return_confirmation",
    "refund_confirmation",
)

# Cross-sell shows a few cards, not a catalogue: more would bury the first ones on a phone.
MAX_RECOMMENDATIONS = 3

# Template names arrive in workflow input; keep them to plain identifiers so
# they can never address a file outside a locale folder.
_TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]*")

# C0/C1 controls (CR, LF, TAB, NUL...) and Unicode line/paragraph separators
# could split or fold a header; they become a single space.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Bidi overrides let a subject display differently from what it says.
_BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r" {2,}")

_SAFE_URL_SCHEMES = ("https://", "http://", "mailto:")


@dataclass(frozen=True)
class EmailContext:
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


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    text: str
    html: str


def header_safe(text: str) -> str:
    """Make text safe for a single header line: no control characters, one space at most."""
    flattened = _LINE_BREAKING.sub(" ", _BIDI_CONTROLS.sub("", text))
    return _SPACES.sub(" ", flattened).strip()


def first_name(full_name: str) -> str:
    """The first word of a name, used in greetings; empty when there is no name."""
    words = header_safe(full_name).split(" ")
    return words[0] if words else ""


def default_loader() -> BaseLoader:
    return FileSystemLoader(TEMPLATE_DIR)


def _tidy_text(text: str) -> str:
    # Template tags leave stray blank lines and trailing spaces in plain text.
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _is_safe_url(url: str) -> bool:
    return url.lower().startswith(_SAFE_URL_SCHEMES) and not _LINE_BREAKING.search(url)


class EmailRenderer:
    """Renders the journey's emails for one brand; safe to share between activities."""

    def __init__(self, brand: Brand, *, loader: BaseLoader | None = None) -> None:
        self._brand = brand
        self._env = Environment(
            loader=loader or default_loader(),
            autoescape=select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=True, default=False
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        register_filters(self._env)
        # keep_at_rules keeps the small-screen media query (it cannot be inlined)
        # while everything else moves into style attributes for clients that
        # strip <style>; remote stylesheets are never fetched.
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

    @property
    def environment(self) -> Environment:
        return self._env

    def render(self, template: str, context: EmailContext) -> RenderedEmail:
        if not _TEMPLATE_NAME.fullmatch(template):
            raise ValueError(f"invalid template name {template!r}")
        text_template, locale = self._load_text(
            template, resolve_locale(context.order.customer.locale)
        )
        html_template = self._env.get_template(f"{locale}/{template}.html.j2")
        variables = self._variables(context, locale)

        subject = header_safe(_render_block(text_template, "subject", variables))
        preheader = header_safe(_render_block(text_template, "preheader", variables))
        text = _tidy_text(text_template.render(variables))
        html = html_template.render({**variables, "subject": subject, "preheader": preheader})
        return RenderedEmail(
            subject=subject, preheader=preheader, text=text, html=self._inliner.inline(html)
        )

    def _load_text(self, template: str, locale: str) -> tuple[Template, str]:
        # A message not yet translated goes out in English rather than not at all.
        try:
            return self._env.get_template(f"{locale}/{template}.txt.j2"), locale
        except TemplateNotFound:
            if locale == DEFAULT_LOCALE:
                raise
            return self._env.get_template(f"{DEFAULT_LOCALE}/{template}.txt.j2"), DEFAULT_LOCALE

    def _variables(self, context: EmailContext, locale: str) -> dict[str, Any]:
        order = context.order
        customer = order.customer
        affected_items, whole_order = _affected_items(order, context.skus)
        return {
            "brand": self._brand,
            "order": order,
            "customer": customer,
            "shipment": context.shipment,
            "first_item": order.items[0] if order.items else None,
            "first_name": first_name(customer.name),
            "links": self._links(context),
            "focus_item": _focus_item(context),
            "feedback": context.feedback,
            "skus": context.skus,
            "affected_items": affected_items,
            "whole_order": whole_order,
            "new_address": context.new_address,
            "delivery_address": context.new_address or order.shipping_address,
            "run_out_at": context.run_out_at,
            "referral_code": context.referral_code,
            "recommendations": self._recommendations(order),
            "locale": locale,
            CURRENCY_VAR: order.currency,
            FORMAT_LOCALE_VAR: formatting_locale(customer.locale, locale),
            TIMEZONE_VAR: customer.timezone,
        }

    def _links(self, context: EmailContext) -> dict[str, str]:
        shop = self._brand.shop_url
        order_url = f"{shop}/orders/{quote(context.order.order_id, safe='')}"
        focus = _focus_item(context)
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
        # A javascript: or header-splitting URL from a carrier or a caller is
        # replaced by our own default rather than failing the send.
        return {
            key: url if _is_safe_url(url) else defaults.get(key, order_url)
            for key, url in links.items()
        }

    def _recommendations(self, order: Order) -> list[Recommendation]:
        # A card without a name would be an empty box; a catalogue URL that is
        # missing or unsafe becomes the product's page in our shop.
        shop = self._brand.shop_url
        cards: list[Recommendation] = []
        for recommendation in order.recommendations:
            if not recommendation.name.strip():
                continue
            url = recommendation.url
            if not _is_safe_url(url):
                url = f"{shop}/products/{quote(recommendation.sku, safe='')}"
            cards.append(replace(recommendation, url=url))
            if len(cards) == MAX_RECOMMENDATIONS:
                break
        return cards


def _focus_item(context: EmailContext) -> LineItem | None:
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


def _render_block(template: Template, block: str, variables: Mapping[str, Any]) -> str:
    render = template.blocks.get(block)
    if render is None:
        raise TemplateError(f"{template.name} has no {block!r} block")
    return "".join(render(template.new_context(dict(variables))))
