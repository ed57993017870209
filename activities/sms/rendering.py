"""Turn a message's context into a short localised text for SMS or WhatsApp.

Templates live under ``templates/<locale>/<name>.txt.j2`` next to this module,
one per message a plan may send by SMS or WhatsApp (``SMS_TEMPLATE_NAMES``), in
every supported locale. Each defines up to three blocks, rendered on their own:

    message   required: the brand name, the greeting and what happened; this is
              the part that is shortened when the text is too long
    link      the link with its label ("Track it: https://..."), never shortened
    opt_out   marketing messages only: "Reply STOP to opt out", never shortened

The text sent is ``message link``, then ``opt_out`` on a line of its own. Each
block is flattened to one line, so a line break in customer data cannot reshape
the text. ``render`` then fits the text into ``max_segments`` with
:func:`activities.sms.segments.fit_to_segments`, keeping link and opt-out whole.

The conventions are those of ``activities.rendering.templating`` (plain template
names, ``StrictUndefined``, English when a text is not yet translated) and the
variables those of ``activities.rendering.context``: exactly what the email
templates see (``brand``, ``order``, ``first_name``, ``links`` with the brand's
defaults and unsafe URLs replaced, ``focus_item``, ``shipment``, the
``money``/``date`` filters, ...). Unlike HTML email nothing is autoescaped: an
SMS is plain text, and "&amp;" would reach the customer's phone as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, FileSystemLoader, Template, TemplateError

from activities.rendering.context import MessageContext, template_variables
from activities.rendering.templating import localised_template, render_block, template_environment
from activities.rendering.text import header_safe
from activities.sms.segments import SegmentInfo, fit_to_segments, segment_info
from engine.platform.brand import Brand

SMS_TEMPLATE_DIR = Path(__file__).parent / "templates"

# Every message a plan may send by SMS or WhatsApp; each exists in every
# supported locale. There is deliberately no generic fallback text.
SMS_TEMPLATE_NAMES: tuple[str, ...] = (
    "order_confirmation",
    "shipping_delay",
    "shipping_notice",
    "out_for_delivery",
    "delivered",
    "order_cancelled",
    "feedback_request",
    "replenishment_reminder",
)

MESSAGE_BLOCK = "message"
LINK_BLOCK = "link"
OPT_OUT_BLOCK = "opt_out"

# Typographic characters outside the GSM alphabet, mostly from customer and
# catalogue data (German quotation marks, a curly apostrophe in "O'Brien"), or
# from Babel ("12,50 €" has a no-break space): any one of them would make the
# whole text UCS-2, which fits less than half as much per segment. Their plain
# look-alikes say the same.
_GSM_LOOKALIKES = str.maketrans(
    {
        "\u00a0": " ",  # no-break space
        "\u2007": " ",  # figure space
        "\u2009": " ",  # thin space
        "\u202f": " ",  # narrow no-break space
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2026": "...",
    }
)


@dataclass(frozen=True)
class SmsText:
    body: str
    info: SegmentInfo


def default_sms_loader() -> BaseLoader:
    return FileSystemLoader(SMS_TEMPLATE_DIR)


def plain_line(text: str) -> str:
    """One line of SMS text: GSM look-alikes for typographic characters, no control
    or bidi characters, single spaces."""
    return header_safe(text.translate(_GSM_LOOKALIKES))


class SmsRenderer:
    """Renders the journey's SMS/WhatsApp texts for one brand; safe to share."""

    def __init__(self, brand: Brand, *, loader: BaseLoader | None = None) -> None:
        self._brand = brand
        self._env = template_environment(loader or default_sms_loader(), autoescape=False)

    @property
    def environment(self) -> Environment:
        return self._env

    def render(self, template: str, context: MessageContext, *, max_segments: int) -> SmsText:
        """The text for ``template``, shortened to ``max_segments`` if need be.

        Raises ValueError for a malformed template name or when the link and
        opt-out alone do not fit ``max_segments``; TemplateNotFound when the
        message has no SMS template.
        """
        sms_template, locale = localised_template(
            self._env, template, context.order.customer.locale
        )
        variables = template_variables(self._brand, context, locale)

        message = plain_line(render_block(sms_template, MESSAGE_BLOCK, variables))
        if not message:
            raise TemplateError(f"{sms_template.name} rendered an empty message")
        link = _optional_block(sms_template, LINK_BLOCK, variables)
        opt_out = _optional_block(sms_template, OPT_OUT_BLOCK, variables)
        tail = "\n".join(part for part in (link, opt_out) if part)
        suffix = f" {tail}" if tail else ""

        body = fit_to_segments(message + suffix, max_segments, keep_suffix=suffix)
        return SmsText(body=body, info=segment_info(body))


def _optional_block(template: Template, block: str, variables: dict[str, Any]) -> str:
    if block not in template.blocks:
        return ""
    return plain_line(render_block(template, block, variables))
