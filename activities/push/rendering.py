"""Turn a message's context into a push notification: a title, a body and the link
the notification opens, in the customer's language.

Templates live under ``templates/<locale>/<name>.txt.j2`` next to this module, one per
message a plan may send by push (``PUSH_TEMPLATE_NAMES``), each with the blocks
``title``, ``body`` and ``link``. They follow the conventions of
``activities.rendering.templating`` and see the variables every channel's templates
see (``activities.rendering.context``). A notification is plain text: nothing is
autoescaped, and each block is flattened to one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import BaseLoader, FileSystemLoader, TemplateError

from activities.rendering.context import MessageContext, template_variables
from activities.rendering.templating import localised_template, render_block, template_environment
from activities.rendering.text import header_safe
from engine.platform.brand import Brand

PUSH_TEMPLATE_DIR = Path(__file__).parent / "templates"

# Every message a plan may send by push; each exists in every supported locale.
PUSH_TEMPLATE_NAMES: tuple[str, ...] = (
    "order_confirmation",
    "shipping_delay",
    "shipping_notice",
    "out_for_delivery",
    "delivered",
    "order_cancelled",
    "feedback_request",
    "replenishment_reminder",
)

# Android shows about this much of a title and of a body's collapsed line; longer
# text is cut by the device where it likes, so it is cut here where it reads well.
MAX_TITLE = 65
MAX_BODY = 240


@dataclass(frozen=True)
class PushText:
    title: str
    body: str
    link: str
    locale: str


class PushRenderer:
    """Renders the journey's push notifications for one brand; safe to share."""

    def __init__(self, brand: Brand, *, loader: BaseLoader | None = None) -> None:
        self._brand = brand
        self._env = template_environment(
            loader or FileSystemLoader(PUSH_TEMPLATE_DIR), autoescape=False
        )

    def render(self, template: str, context: MessageContext) -> PushText:
        """The notification for ``template``; ValueError for a malformed name,
        TemplateNotFound when the message has no push template."""
        push_template, locale = localised_template(
            self._env, template, context.order.customer.locale
        )
        variables = template_variables(self._brand, context, locale)
        title = header_safe(render_block(push_template, "title", variables))
        body = header_safe(render_block(push_template, "body", variables))
        if not title or not body:
            raise TemplateError(f"{push_template.name} rendered an empty title or body")
        link = header_safe(render_block(push_template, "link", variables))
        return PushText(
            title=_shortened(title, MAX_TITLE),
            body=_shortened(body, MAX_BODY),
            link=link,
            locale=locale,
        )


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"
