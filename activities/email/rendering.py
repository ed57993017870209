"""Turn a message's context into a localised subject, preheader, text and HTML email.

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

The templates follow the shared conventions of ``activities.rendering.templating``
(plain template names, ``StrictUndefined``, English when a message is not yet
translated) and see the variables of ``activities.rendering.context``, the same
as the SMS templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import css_inline
from jinja2 import BaseLoader, Environment, FileSystemLoader, select_autoescape

from activities.rendering.context import MessageContext, template_variables
from activities.rendering.templating import localised_template, render_block, template_environment
from activities.rendering.text import header_safe
from engine.platform.brand import Brand

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


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    text: str
    html: str


def default_loader() -> BaseLoader:
    return FileSystemLoader(TEMPLATE_DIR)


def _tidy_text(text: str) -> str:
    # Template tags leave stray blank lines and trailing spaces in plain text.
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


class EmailRenderer:
    """Renders the journey's emails for one brand; safe to share between activities."""

    def __init__(self, brand: Brand, *, loader: BaseLoader | None = None) -> None:
        self._brand = brand
        self._env = template_environment(
            loader or default_loader(),
            autoescape=select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=True, default=False
            ),
        )
        # keep_at_rules keeps the small-screen media query (it cannot be inlined)
        # while everything else moves into style attributes for clients that
        # strip <style>; remote stylesheets are never fetched.
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

    @property
    def environment(self) -> Environment:
        return self._env

    def render(self, template: str, context: MessageContext) -> RenderedEmail:
        text_template, locale = localised_template(
            self._env, template, context.order.customer.locale
        )
        html_template = self._env.get_template(f"{locale}/{template}.html.j2")
        variables = template_variables(self._brand, context, locale)

        subject = header_safe(render_block(text_template, "subject", variables))
        preheader = header_safe(render_block(text_template, "preheader", variables))
        text = _tidy_text(text_template.render(variables))
        html = html_template.render({**variables, "subject": subject, "preheader": preheader})
        return RenderedEmail(
            subject=subject, preheader=preheader, text=text, html=self._inliner.inline(html)
        )
