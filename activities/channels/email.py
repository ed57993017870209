"""The email channel: render (Jinja2), build multipart MIME, hand to SMTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from html import escape

from activities.channels.base import (
    PermanentDeliveryError,
    TransientDeliveryError,
    message_context,
)
from activities.email.message import build_email, domain_of
from activities.email.rendering import EmailRenderer
from activities.email.smtp import PermanentSmtpError, SmtpMailer, TransientSmtpError
from activities.handover import Handover
from activities.rendering.click_tracking import ClickTracker
from activities.rendering.text import header_safe
from engine.messaging.bounce_address import verp_address
from engine.messaging.ledger import message_id_for
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from engine.platform.links.urls import (
    feedback_url,
    preferences_url,
    unsubscribe_url,
    with_language,
)
from workflows.contracts import SendMessageInput
from workflows.plans.model import Category


@dataclass(frozen=True)
class LinkBuilder:
    """The links a message carries: the shop's pages, and signed links to our HTTP
    app (unsubscribe, preferences, feedback) bound to customer and journey."""

    shop_url: str
    public_base_url: str = ""
    signer: LinkSigner | None = None
    # Click tracking; None: links go to their targets directly.
    clicks: ClickTracker | None = None

    def tracker(self, message_key: str) -> Callable[[str, str], str] | None:
        """How the links of the ledger message ``message_key`` are rewritten, if at all."""
        return self.clicks.for_message(message_key) if self.clicks is not None else None

    def for_request(self, request: SendMessageInput) -> dict[str, str]:
        order_url = f"{self.shop_url}/orders/{request.order.order_id}"
        tracking = request.shipment.tracking_url if request.shipment else ""
        links = {
            "order": order_url,
            "track_order": tracking or order_url,
            "help": f"{self.shop_url}/help?order={request.order.order_id}",
        }
        if self.signer is not None and self.public_base_url:
            customer, journey = request.order.customer.id, request.journey_id
            sign = self.signer.sign
            base = self.public_base_url
            links["unsubscribe"] = unsubscribe_url(
                base, sign(LinkPurpose.UNSUBSCRIBE, customer, journey)
            )
            links["preferences"] = preferences_url(
                base, sign(LinkPurpose.PREFERENCES, customer, journey)
            )
            links["feedback"] = feedback_url(base, sign(LinkPurpose.FEEDBACK, customer, journey))
            # The pages speak the language the message was written for.
            for page in ("unsubscribe", "preferences", "feedback"):
                links[page] = with_language(links[page], request.order.customer.locale)
        return links


class EmailChannel:
    def __init__(
        self,
        renderer: EmailRenderer,
        mailer: SmtpMailer,
        sender: str,
        links: LinkBuilder,
        *,
        bounce_address: str | None = None,
    ) -> None:
        self._renderer = renderer
        self._mailer = mailer
        self._sender = sender
        self._links = links
        # Bounces go to this address with the message's token in it (VERP).
        self._bounce_address = bounce_address

    def address_of(self, request: SendMessageInput) -> str:
        return request.order.customer.email

    def unavailable_reason(self, request: SendMessageInput) -> str:
        return ""

    async def deliver(
        self, request: SendMessageInput, address: str, key: str, handover: Handover
    ) -> str:
        message_id = message_id_for(key, domain_of(self._sender))
        links = self._links.for_request(request)
        context = message_context(request, links, self._links.tracker(key))
        rendered = self._renderer.render(request.template, context)
        if request.subject:
            # An experiment's variant with a subject line of its own.
            rendered = replace(rendered, subject=header_safe(request.subject))
        pixel = self._links.clicks.pixel(key) if self._links.clicks is not None else None
        if pixel is not None:
            rendered = replace(rendered, html=with_pixel(rendered.html, pixel))
        # Marketing carries one-click unsubscribe (RFC 8058), which mail providers
        # show next to the sender; transactional mail must not look optional.
        unsubscribe = links.get("unsubscribe") if request.category == Category.MARKETING else None
        email = build_email(
            rendered,
            sender=self._sender,
            recipient_email=address,
            recipient_name=request.order.customer.name,
            message_id=message_id,
            journey_id=request.journey_id,
            step=request.step,
            list_unsubscribe_url=unsubscribe,
        )
        try:
            envelope_from = (
                verp_address(self._bounce_address, message_id) if self._bounce_address else None
            )
            await self._mailer.send(email, handover, envelope_from=envelope_from)
        except PermanentSmtpError as err:
            raise PermanentDeliveryError(str(err)) from err
        except TransientSmtpError as err:
            raise TransientDeliveryError(str(err), maybe_delivered=err.maybe_delivered) from err
        return message_id


def with_pixel(html: str, url: str) -> str:
    """``html`` with a 1x1 open-tracking image at the end of its body."""
    image = f'<img src="{escape(url)}" width="1" height="1" alt="" style="display:block;border:0">'
    head, found, tail = html.rpartition("</body>")
    return f"{head}{image}{found}{tail}" if found else html + image
