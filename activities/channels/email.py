"""The email channel: render (Jinja2), build multipart MIME, hand to SMTP."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from activities.channels.base import PermanentDeliveryError, TransientDeliveryError
from activities.email.message import build_email, domain_of
from activities.email.rendering import EmailContext, EmailRenderer
from activities.email.smtp import PermanentSmtpError, SmtpMailer, TransientSmtpError
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


def referral_code(customer_id: str) -> str:
    """A stable code per customer, with no personal data in it."""
    return "REF-" + hashlib.sha256(customer_id.encode()).hexdigest()[:8].upper()


def email_context(request: SendMessageInput, links: dict[str, str]) -> EmailContext:
    focus = next((i for i in request.order.items if i.sku == request.focus_sku), None)
    return EmailContext(
        order=request.order,
        shipment=request.shipment,
        links=links,
        focus_item=focus,
        feedback=request.feedback,
        skus=tuple(request.skus),
        new_address=request.new_address,
        run_out_at=request.run_out_at,
        referral_code=referral_code(request.order.customer.id),
    )


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

    async def deliver(self, request: SendMessageInput, address: str, key: str) -> str:
        message_id = message_id_for(key, domain_of(self._sender))
        links = self._links.for_request(request)
        rendered = self._renderer.render(request.template, email_context(request, links))
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
            await self._mailer.send(email)
        except PermanentSmtpError as err:
            raise PermanentDeliveryError(str(err)) from err
        except TransientSmtpError as err:
            raise TransientDeliveryError(str(err)) from err
        return message_id
