"""What every channel shares: the protocol, the outcome vocabulary and the failure
classes, and the context a message is rendered from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

from activities.handover import Handover
from activities.rendering.context import MessageContext
from engine.platform.redaction import redact
from workflows.contracts import SendMessageInput


class DeliveryError(Exception):
    """A provider's failure, its text redacted of email addresses and phone numbers:
    the text goes on into the ledger, the suppression list, Temporal's failures and
    the logs, and providers quote the recipient in theirs."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class PermanentDeliveryError(DeliveryError):
    """The provider refused this address for good (bounce, invalid or unsubscribed
    number): never retry, suppress the address, fall back to the next channel."""


class ChannelUnavailableError(DeliveryError):
    """Nothing was sent, and this channel cannot carry this message to this customer
    now (no push device left; WhatsApp refusing free-form text outside its window with
    no template to use): the step tries its next channel, and, unlike a permanent
    refusal, the address is not suppressed, since it works again later."""


class TransientDeliveryError(DeliveryError):
    """Try again later (4xx, rate limits, outages); ``retry_after`` when the provider said.

    ``maybe_delivered``: the message was on its way when the failure came (a timeout
    or a dropped connection after the provider got it), so the provider may have
    taken it after all."""

    def __init__(
        self,
        message: str,
        retry_after_seconds: float | None = None,
        *,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.maybe_delivered = maybe_delivered


class DeliveryChannel(Protocol):
    """One way of reaching a customer (email, SMS, WhatsApp); ``send_message`` picks one
    by the request's ``workflows.vocabulary.Channel``."""

    def address_of(self, request: SendMessageInput) -> str:
        """The recipient address on this channel ('' when the customer has none)."""
        ...

    def unavailable_reason(self, request: SendMessageInput) -> str:
        """Why this channel cannot carry this message here ('' when it can)."""
        ...

    async def deliver(
        self, request: SendMessageInput, address: str, key: str, handover: Handover
    ) -> str:
        """Send; returns the provider's message id. Raises DeliveryError subclasses.

        The handover must begin by ``handover.start_by`` or the channel gives up
        (transient) without sending; the channel sets ``handover.begun`` when the
        message starts on its way."""
        ...


def referral_code(customer_id: str) -> str:
    """A stable code per customer, with no personal data in it."""
    return "REF-" + hashlib.sha256(customer_id.encode()).hexdigest()[:8].upper()


def message_context(
    request: SendMessageInput,
    links: dict[str, str],
    track: Callable[[str, str], str] | None = None,
) -> MessageContext:
    """What the journey's request tells the templates, with the links the message carries
    (each rewritten by ``track`` for click tracking, when given)."""
    focus = next((i for i in request.order.items if i.sku == request.focus_sku), None)
    return MessageContext(
        order=request.order,
        shipment=request.shipment,
        links=links,
        focus_item=focus,
        feedback=request.feedback,
        skus=tuple(request.skus),
        new_address=request.new_address,
        run_out_at=request.run_out_at,
        referral_code=referral_code(request.order.customer.id),
        track_link=track,
    )
