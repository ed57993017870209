"""Turn an order (and maybe a shipment) into a localised subject, preheader, text and HTML.

Template scheme, under ``templates/`` next to this module::

    layout.html.j2           brand shell every HTML email extends: logo, colours,
                             hidden preheader, footer (address, help, preferences)
    layout.txt.j2            plain-text shell with the shared footer
    macros.html.j2           bulletproof CTA button, item and address blocks (HTML)
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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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

from activities.email.brand import Brand
from activities.email.formatting import (
    CURRENCY_VAR,
    DEFAULT_LOCALE,
    FORMAT_LOCALE_VAR,
    TIMEZONE_VAR,
    formatting_locale,
    register_filters,
    resolve_locale,
)
from workflows.model import Order, Shipment

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
    "review_request",
)

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
    order: Order
    shipment: Shipment | None = None
    links: dict[str, str] = field(default_factory=dict)


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
        return {
            "brand": self._brand,
            "order": order,
            "customer": customer,
            "shipment": context.shipment,
            "first_item": order.items[0] if order.items else None,
            "first_name": first_name(customer.name),
            "links": self._links(context),
            "locale": locale,
            CURRENCY_VAR: order.currency,
            FORMAT_LOCALE_VAR: formatting_locale(customer.locale, locale),
            TIMEZONE_VAR: customer.timezone,
        }

    def _links(self, context: EmailContext) -> dict[str, str]:
        shop = self._brand.shop_url
        order_url = f"{shop}/orders/{quote(context.order.order_id, safe='')}"
        defaults = {
            "shop": shop,
            "order": order_url,
            "track_order": order_url,
            "help": f"{shop}/help",
            "feedback": f"{order_url}/feedback",
            "review": f"{order_url}/review",
            "reorder": f"{order_url}/reorder",
            "unsubscribe": f"{shop}/account/email-preferences",
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


def _render_block(template: Template, block: str, variables: Mapping[str, Any]) -> str:
    render = template.blocks.get(block)
    if render is None:
        raise TemplateError(f"{template.name} has no {block!r} block")
    return "".join(render(template.new_context(dict(variables))))
