"""SMS and WhatsApp through Twilio: a short text per step, trimmed to the plan's cap."""

from __future__ import annotations

from activities.channels.base import (
    PermanentDeliveryError,
    TransientDeliveryError,
    message_context,
)
from activities.channels.email import LinkBuilder
from activities.handover import Handover
from activities.sms.rendering import SMS_TEMPLATE_NAMES, SmsRenderer
from activities.sms.twilio_sender import PermanentSmsError, TransientSmsError, TwilioSender
from engine.messaging.phone_index import PhoneIndex
from workflows.contracts import SendMessageInput


class SmsChannel:
    def __init__(
        self,
        sender: TwilioSender | None,
        renderer: SmsRenderer,
        links: LinkBuilder,
        *,
        whatsapp: bool = False,
        whatsapp_enabled: bool = True,
        phones: PhoneIndex | None = None,
    ) -> None:
        self._sender = sender
        self._renderer = renderer
        self._links = links
        self._whatsapp = whatsapp
        self._whatsapp_enabled = whatsapp_enabled
        # Notes who is texted at which number, so a STOP reply finds the customer.
        self._phones = phones

    @property
    def _name(self) -> str:
        return "WhatsApp" if self._whatsapp else "SMS"

    def address_of(self, request: SendMessageInput) -> str:
        return request.order.customer.phone

    def unavailable_reason(self, request: SendMessageInput) -> str:
        if self._sender is None:
            return f"no {self._name} provider configured"
        if self._whatsapp and not self._whatsapp_enabled:
            return "no WhatsApp sender configured"
        if request.template not in SMS_TEMPLATE_NAMES:
            return f"no {self._name} text for {request.template}"
        return ""

    async def deliver(
        self, request: SendMessageInput, address: str, key: str, handover: Handover
    ) -> str:
        assert self._sender is not None
        text = self._renderer.render(
            request.template,
            message_context(request, self._links.for_request(request)),
            max_segments=request.max_sms_segments,
        )
        if self._phones is not None:
            # Before the send: a STOP can come back seconds after the text arrives.
            await self._phones.remember(address, request.order.customer.id)
        try:
            receipt = await self._sender.send(
                address, text.body, whatsapp=self._whatsapp, ledger_key=key, handover=handover
            )
        except PermanentSmsError as err:
            raise PermanentDeliveryError(f"{self._name} refused: {err}") from err
        except TransientSmsError as err:
            raise TransientDeliveryError(
                str(err), err.retry_after_seconds, maybe_delivered=err.maybe_delivered
            ) from err
        return receipt.sid
