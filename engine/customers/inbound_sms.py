"""Replies customers text back: ``POST /twilio/inbound`` (Twilio's inbound webhook).

Twilio posts each incoming SMS or WhatsApp message (``From``, ``To``, ``Body``,
``MessageSid``...) signed with ``X-Twilio-Signature``, checked exactly like the
status callbacks; an unsigned or forged request gets 403 and changes nothing.

Keywords, as carriers and Twilio define them (the whole message, any case):

* STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT: the number is put on the SMS
  suppression list and every customer texted at it (``engine.messaging.phone_index``)
  refuses every category that needs consent on SMS; a reply from WhatsApp does
  the same for WhatsApp too. Recorded with source ``sms_stop``. No reply: the
  number has just opted out (Twilio sends the carrier-mandated confirmation).
* START, YES, UNSTOP: the reverse (source ``sms_start``), and a confirmation.
* HELP, INFO: who we are and how to reach support.

Anything else gets an empty answer. The answer is TwiML: ``<Response>`` with
an optional ``<Message>``.

The signature covers the request, not when it was made, so a captured STOP or
START could be replayed later to flip a customer's choice back: each
``MessageSid`` is acted on once (``used_link_tokens`` keeps its hash).
"""

from __future__ import annotations

import string
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from engine.customers.consent import ConsentLedger, CustomerErased
from engine.customers.consent_changes import ConsentChanged, tell_journeys
from engine.messaging.phone_index import WHATSAPP_PREFIX, PhoneIndex, normalise_phone
from engine.messaging.suppressions import SuppressionList
from engine.platform.brand import Brand
from engine.platform.logging import get_logger
from engine.platform.twilio_signature import TwilioSignature

log = get_logger(__name__)

# Where Twilio posts the texts customers send (the number's messaging webhook).
INBOUND_PATH = "/twilio/inbound"
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
SOURCE_STOP = "sms_stop"
SOURCE_START = "sms_start"
# Prefix of the once-only key of an inbound message (hashed into used_link_tokens).
_ONCE_PREFIX = "twilio-inbound:"
TWIML_CONTENT_TYPE = "application/xml"


def keyword(body: str) -> str:
    """The message as a keyword: trimmed, upper case, without trailing punctuation."""
    return body.strip().rstrip(string.punctuation + " ").upper()


def twiml(message: str | None = None) -> Response:
    inner = f"<Message>{escape(message)}</Message>" if message else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return Response(body, media_type=TWIML_CONTENT_TYPE)


class InboundSms:
    def __init__(
        self,
        *,
        signature: TwilioSignature,
        consent: ConsentLedger,
        suppressions: SuppressionList,
        phones: PhoneIndex,
        brand: Brand,
        on_consent_changed: ConsentChanged | None = None,
    ) -> None:
        self._signature = signature
        self._consent = consent
        self._suppressions = suppressions
        self._phones = phones
        self._brand = brand
        self._on_consent_changed = on_consent_changed

    async def receive(self, request: Request) -> Response:
        async with request.form() as form:
            problem = self._signature.problem(request, form)
            if problem:
                log.warning("inbound message refused", reason=problem)
                return PlainTextResponse("forbidden", status_code=403)
            sender = form.get("From")
            body = form.get("Body")
            sid = form.get("MessageSid") or form.get("SmsSid")
        if not isinstance(sender, str) or not normalise_phone(sender):
            return PlainTextResponse("From is required", status_code=400)
        word = keyword(body) if isinstance(body, str) else ""
        if word in HELP_WORDS:
            return twiml(self._help_text())
        if word not in STOP_WORDS and word not in START_WORDS:
            log.info("inbound message without a keyword")
            return twiml()
        stop = word in STOP_WORDS
        reply = None if stop else self._start_text()
        if (
            isinstance(sid, str)
            and sid
            and not await self._consent.use_token_once(_ONCE_PREFIX + sid)
        ):
            log.warning("inbound keyword message seen before; not acted on again")
            return twiml(reply)
        await self._apply(sender, stop, sid if isinstance(sid, str) else "")
        return twiml(reply)

    async def _apply(self, sender: str, stop: bool, sid: str) -> None:
        number = normalise_phone(sender)
        channels = ["sms"]
        if sender.strip().lower().startswith(WHATSAPP_PREFIX):
            channels.append("whatsapp")
        source = SOURCE_STOP if stop else SOURCE_START
        customers = []
        for customer_id in await self._phones.customers(number):
            try:
                for channel in channels:
                    # No category: every category that needs consent; transactional
                    # and support messages are never a matter of consent.
                    await self._consent.record(
                        customer_id, granted=not stop, channel=channel, category=None, source=source
                    )
            except CustomerErased:
                continue  # nothing may be written about them, and nothing is sent
            customers.append(customer_id)
        for channel in channels:
            if stop:
                await self._suppressions.add(channel, number, f"customer replied STOP ({sid})")
            else:
                await self._suppressions.remove(channel, number)
        log.info(
            "inbound opt-out" if stop else "inbound opt-in",
            channels=channels,
            customers=len(customers),
            message_sid=sid,
        )
        for customer_id in customers:
            await tell_journeys(self._on_consent_changed, customer_id, source)

    def _help_text(self) -> str:
        return (
            f"{self._brand.name}: updates about your orders. Help: {self._brand.support_email}. "
            "Reply STOP to unsubscribe."
        )

    def _start_text(self) -> str:
        return (
            f"{self._brand.name}: you will get our messages again. "
            "Reply STOP to unsubscribe, HELP for help."
        )
