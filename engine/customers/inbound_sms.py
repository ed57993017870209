"""Replies customers text back: ``POST /twilio/inbound`` (Twilio's inbound webhook).

Twilio posts each incoming SMS or WhatsApp message (``From``, ``To``, ``Body``,
``MessageSid``...) signed with ``X-Twilio-Signature``, checked exactly like the
status callbacks; an unsigned or forged request gets 403 and changes nothing (one
without the header, before its body is read; bodies are capped by the app).

Keywords, as carriers and Twilio define them (the whole message, any case):

* STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT: the number is put on the SMS
  suppression list and every customer texted at it (``engine.messaging.phone_index``)
  refuses every category that needs consent on SMS; a reply from WhatsApp does
  the same for WhatsApp too. Recorded with source ``sms_stop``. No reply: the
  number has just opted out (Twilio sends the carrier-mandated confirmation).
* START, YES, UNSTOP: the reverse (source ``sms_start``), and a confirmation.
* HELP, INFO: who we are and how to reach support.

Both answers speak the language the number's customers stored, if they agree on one
(``engine.customers.keyword_replies``), else English.

Any WhatsApp message opens WhatsApp's 24-hour customer-service window for the
number (``engine.messaging.whatsapp_windows``), keyword or not.

Anything else gets an empty answer. The answer is TwiML: ``<Response>`` with
an optional ``<Message>``.

The signature covers the request, not when it was made, so a captured STOP or
START could be replayed later to flip a customer's choice back: each
``MessageSid`` is acted on once (``used_link_tokens`` keeps its hash). Marking it
used, the consent events and the suppression list change in one transaction: if
any of it fails, none of it is kept, Twilio gets a 500, and its retry of the same
message is applied instead of being taken for a replay.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from engine.customers.consent import (
    SOURCE_SMS_START,
    SOURCE_SMS_STOP,
    ConsentDecision,
    ConsentLedger,
)
from engine.customers.consent_changes import ConsentChanged, tell_journeys
from engine.customers.keyword_replies import help_text, reply_language, start_text
from engine.messaging.phone_index import WHATSAPP_PREFIX, PhoneIndex, normalise_phone
from engine.messaging.suppressions import normalise_address, normalise_channel
from engine.messaging.whatsapp_windows import WhatsAppWindows
from engine.platform.brand import Brand
from engine.platform.database.tables import SuppressedAddress
from engine.platform.database.upsert import insert_on_conflict
from engine.platform.logging import get_logger
from engine.platform.twilio_signature import TwilioSignature

log = get_logger(__name__)

# Where Twilio posts the texts customers send (the number's messaging webhook).
INBOUND_PATH = "/twilio/inbound"
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
SOURCE_STOP = SOURCE_SMS_STOP
SOURCE_START = SOURCE_SMS_START
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
        phones: PhoneIndex,
        brand: Brand,
        on_consent_changed: ConsentChanged | None = None,
        windows: WhatsAppWindows | None = None,
    ) -> None:
        self._signature = signature
        # Any WhatsApp message of the customer opens WhatsApp's 24-hour window.
        self._windows = windows
        self._consent = consent
        self._phones = phones
        self._brand = brand
        self._on_consent_changed = on_consent_changed

    async def receive(self, request: Request) -> Response:
        # What needs no body first: an unsigned request is not worth reading.
        if problem := self._signature.header_problem(request):
            log.warning("inbound message refused", reason=problem)
            return PlainTextResponse("forbidden", status_code=403)
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
        if self._windows is not None and sender.lower().startswith(WHATSAPP_PREFIX):
            await self._windows.opened(sender, datetime.now(UTC))
        word = keyword(body) if isinstance(body, str) else ""
        if word in HELP_WORDS:
            return twiml(help_text(self._brand, await self._language(sender)))
        if word not in STOP_WORDS and word not in START_WORDS:
            log.info("inbound message without a keyword")
            return twiml()
        stop = word in STOP_WORDS
        reply = None if stop else start_text(self._brand, await self._language(sender))
        message_sid = sid if isinstance(sid, str) else ""
        if not await self._apply(sender, stop, message_sid):
            log.warning("inbound keyword message seen before; not acted on again")
        return twiml(reply)

    async def _apply(self, sender: str, stop: bool, sid: str) -> bool:
        """Record the keyword for every customer of the number and update the
        suppression list, all in one transaction with marking ``sid`` used; False,
        changing nothing, when ``sid`` was acted on before."""
        number = normalise_phone(sender)
        channels = ["sms"]
        if sender.strip().lower().startswith(WHATSAPP_PREFIX):
            channels.append("whatsapp")
        source = SOURCE_STOP if stop else SOURCE_START
        # No category: every category that needs consent; transactional and
        # support messages are never a matter of consent.
        decisions = [ConsentDecision(granted=not stop, channel=channel) for channel in channels]
        candidates = await self._phones.customers(number)
        customers = []
        async with self._consent.once(_ONCE_PREFIX + sid if sid else None) as session:
            if session is None:
                return False
            for customer_id in candidates:
                # An erased customer is skipped: nothing may be written about them,
                # and nothing is sent to them.
                if await self._consent.append_unless_erased(
                    session, customer_id, decisions, source
                ):
                    customers.append(customer_id)
            for channel in channels:
                if stop:
                    await _suppress(session, channel, number, f"customer replied STOP ({sid})")
                else:
                    await _lift_suppression(session, channel, number)
        log.info(
            "inbound opt-out" if stop else "inbound opt-in",
            channels=channels,
            customers=len(customers),
            message_sid=sid,
        )
        for customer_id in customers:
            await tell_journeys(self._on_consent_changed, customer_id, source)
        return True

    async def _language(self, sender: str) -> str:
        """The language of the answer to a keyword from ``sender``."""
        customers = await self._phones.customers(sender)
        return await reply_language(self._phones.sessions, customers)


# The suppression list's writes, in the inbound message's own transaction (the
# SuppressionList methods each commit on their own).
async def _suppress(session: AsyncSession, channel: str, number: str, reason: str) -> None:
    # ON CONFLICT DO NOTHING: a number suppressed already stays as it is, and the
    # PostgreSQL transaction is not aborted by the conflict.
    statement = insert_on_conflict(
        session.get_bind().dialect.name, SuppressedAddress
    ).on_conflict_do_nothing(index_elements=["channel", "address"])
    await session.execute(
        statement.values(
            channel=normalise_channel(channel),
            address=normalise_address(channel, number),
            reason=reason,
        )
    )


async def _lift_suppression(session: AsyncSession, channel: str, number: str) -> None:
    await session.execute(
        delete(SuppressedAddress).where(
            SuppressedAddress.channel == normalise_channel(channel),
            SuppressedAddress.address == normalise_address(channel, number),
        )
    )
