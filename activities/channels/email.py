"""The email channel: render (Jinja2), build multipart MIME, hand to SMTP."""

from __future__ import annotations

from dataclasses import dataclass

from activities.channels.base import (
    PermanentDeliveryError,
    TransientDeliveryError,
    message_context,
)
from activities.email.message import build_email, domain_of
from activities.email.rendering import EmailRenderer
from activities.email.smtp import PermanentSmtpError, SmtpMailer, TransientSmtpError
from activities.handover import Handover
from engine.messaging.ledger import message_id_for
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from engine.platform.links.urls import feedback_url, preferences_url, unsubscribe_url
from workflows.contracts import SendMessageInput
from workflows.plans.model import Category


@dataclass(frozen=True)
class LinkBuilder:
    """The links a message carries: the shop's pages, and signed links to our HTTP
    app (unsubscribe, preferences, feedback) bound to customer and journey."""

    shop_url: str
    public_base_url: str = ""
    signer: LinkSigner | None = None

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
        return links


class EmailChannel:
    def __init__(
        self, renderer: EmailRenderer, mailer: SmtpMailer, sender: str, links: LinkBuilder
    ) -> None:
        self._renderer = renderer
        self._mailer = mailer
        self._sender = sender
        self._links = links

    def address_of(self, request: SendMessageInput) -> str:
        return request.order.customer.email

    def unavailable_reason(self, request: SendMessageInput) -> str:
        return ""

    async def deliver(
        self, request: SendMessageInput, address: str, key: str, handover: Handover
    ) -> str:
        message_id = message_id_for(key, domain_of(self._sender))
        links = self._links.for_request(request)
        rendered = self._renderer.render(request.template, message_context(request, links))
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
            await self._mailer.send(email, handover)
        except PermanentSmtpError as err:
            raise PermanentDeliveryError(str(err)) from err
        except TransientSmtpError as err:
            raise TransientDeliveryError(str(err), maybe_delivered=err.maybe_delivered) from err
        return message_id
