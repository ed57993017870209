"""SMS and WhatsApp through Twilio: a short text per step, trimmed to the plan's cap.

WhatsApp as WhatsApp works: free-form text only inside the 24-hour window a customer's
own WhatsApp message opens (``engine.messaging.whatsapp_windows``); outside it, the
step's approved template (``activities.sms.whatsapp_templates``) through Twilio's
Content API. When neither is possible, or WhatsApp refuses free-form text all the same
(error 63016: the window closed) and no template is configured, nothing was sent and
the step goes on to its next channel; the number is never suppressed for it, since it
is no fault of the number's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from activities.channels.base import (
    ChannelUnavailableError,
    PermanentDeliveryError,
    TransientDeliveryError,
    message_context,
)
from activities.channels.email import LinkBuilder
from activities.handover import Handover
from activities.rendering.context import MessageContext
from activities.sms.rendering import SMS_TEMPLATE_NAMES, SmsRenderer
from activities.sms.twilio_sender import (
    WHATSAPP_OUTSIDE_WINDOW,
    PermanentSmsError,
    SmsReceipt,
    TransientSmsError,
    TwilioSender,
)
from activities.sms.whatsapp_templates import RenderedContent, WhatsAppTemplates
from engine.messaging.phone_index import PhoneIndex
from engine.messaging.whatsapp_windows import WhatsAppWindows
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
        templates: WhatsAppTemplates | None = None,
        windows: WhatsAppWindows | None = None,
    ) -> None:
        self._sender = sender
        self._renderer = renderer
        self._links = links
        self._whatsapp = whatsapp
        self._whatsapp_enabled = whatsapp_enabled
        # Notes who is texted at which number, so a STOP reply finds the customer.
        self._phones = phones
        # WhatsApp only: the approved templates, and the windows customers opened.
        # Without ``windows`` nothing is known of them: free-form text is tried.
        self._templates = templates
        self._windows = windows

    @property
    def _name(self) -> str:
        return "WhatsApp" if self._whatsapp else "SMS"

    def address_of(self, request: SendMessageInput) -> str:
        return request.order.customer.phone

    def _has_template(self, request: SendMessageInput) -> bool:
        templates = self._templates if self._whatsapp else None
        return templates is not None and templates.find(request.template, "en") is not None

    def unavailable_reason(self, request: SendMessageInput) -> str:
        if self._sender is None:
            return f"no {self._name} provider configured"
        if self._whatsapp and not self._whatsapp_enabled:
            return "no WhatsApp sender configured"
        if request.template not in SMS_TEMPLATE_NAMES and not self._has_template(request):
            return f"no {self._name} text for {request.template}"
        return ""

    async def deliver(
        self, request: SendMessageInput, address: str, key: str, handover: Handover
    ) -> str:
        assert self._sender is not None
        context = message_context(request, self._links.for_request(request))
        if self._phones is not None:
            # Before the send: a STOP can come back seconds after the text arrives.
            await self._phones.remember(address, request.order.customer.id)
        if not self._whatsapp:
            return (await self._send_text(request, context, address, key, handover)).sid
        content = self._templates.render(request.template, context) if self._templates else None
        free_form = request.template in SMS_TEMPLATE_NAMES and (
            self._windows is None or await self._windows.is_open(address, datetime.now(UTC))
        )
        if free_form:
            try:
                return (await self._send_text(request, context, address, key, handover)).sid
            except PermanentDeliveryError as err:
                if err.__cause__ is None or _code(err.__cause__) != WHATSAPP_OUTSIDE_WINDOW:
                    raise
                if content is None:
                    raise ChannelUnavailableError(
                        f"WhatsApp refused free-form text outside its 24-hour window "
                        f"(Twilio error {WHATSAPP_OUTSIDE_WINDOW}) and no approved template "
                        f"is configured for {request.template}"
                    ) from None
                handover.begun = False  # refused: nothing went out
        if content is None:
            raise ChannelUnavailableError(
                f"outside WhatsApp's 24-hour window and no approved template is configured "
                f"for {request.template}"
            )
        return (await self._send_template(content, address, key, handover)).sid

    async def _send_text(
        self,
        request: SendMessageInput,
        context: MessageContext,
        address: str,
        key: str,
        handover: Handover,
    ) -> SmsReceipt:
        assert self._sender is not None
        text = self._renderer.render(
            request.template, context, max_segments=request.max_sms_segments
        )
        try:
            return await self._sender.send(
                address, text.body, whatsapp=self._whatsapp, ledger_key=key, handover=handover
            )
        except PermanentSmsError as err:
            raise PermanentDeliveryError(f"{self._name} refused: {err}") from err
        except TransientSmsError as err:
            raise TransientDeliveryError(
                str(err), err.retry_after_seconds, maybe_delivered=err.maybe_delivered
            ) from err

    async def _send_template(
        self, content: RenderedContent, address: str, key: str, handover: Handover
    ) -> SmsReceipt:
        assert self._sender is not None
        try:
            return await self._sender.send(
                address,
                "",
                whatsapp=True,
                ledger_key=key,
                handover=handover,
                content_sid=content.content_sid,
                content_variables=content.content_variables,
            )
        except PermanentSmsError as err:
            raise PermanentDeliveryError(f"WhatsApp refused the template: {err}") from err
        except TransientSmsError as err:
            raise TransientDeliveryError(
                str(err), err.retry_after_seconds, maybe_delivered=err.maybe_delivered
            ) from err


def _code(error: BaseException) -> int | None:
    return error.code if isinstance(error, PermanentSmsError) else None
