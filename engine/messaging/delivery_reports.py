"""Twilio's status callbacks: what became of each text after it was handed over.

A report records the provider's delivery status against the ledger row (found by
the ledger key carried in the callback URL, else by the message SID), a final one
(delivered, undelivered, failed) as the message's engagement too, and a report
that the number is gone for good suppresses it. Any report at all proves Twilio
accepted the message, which closes the window in which a send that died before
recording its acceptance would be sent again.

A text reported ``undelivered`` or ``failed`` is told to its journey
(``on_undelivered``), which sends the step's next channel while the step is timely.

Only signed reports count. A request without ``X-Twilio-Signature`` (or any while
no auth token is configured) is refused before its body is read; the route caps
the body (``engine.platform.twilio_signature.MAX_BODY_BYTES``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from engine.messaging.engagement import TWILIO_OUTCOMES, record_engagement
from engine.messaging.ledger import DELIVERY_STATUS_RANK, MessageLedger
from engine.messaging.suppressions import SuppressionList
from engine.platform.logging import get_logger
from engine.platform.twilio_signature import TwilioSignature
from workflows.contracts import UndeliveredMessage
from workflows.vocabulary import Channel

log = get_logger(__name__)

STATUS_PATH = "/twilio/status"
# The query parameter of the callback URL that names the message's ledger row.
LEDGER_KEY_PARAM = "ledger_key"
WHATSAPP_PREFIX = "whatsapp:"

# Twilio error codes that mean the number must not be messaged again:
# 21610 the recipient replied STOP; 30005 unknown or inactive number;
# 30006 landline or unreachable carrier.
SUPPRESSING_ERROR_CODES = {
    "21610": "unsubscribed (Twilio 21610)",
    "30005": "unknown or inactive number (Twilio 30005)",
    "30006": "landline or unreachable carrier (Twilio 30006)",
}


# Reports after which the text did not reach the phone.
NOT_DELIVERED = frozenset({"undelivered", "failed"})
# Tells a journey (by its id) that one of its texts was not delivered.
UndeliveredCallback = Callable[[str, UndeliveredMessage], Awaitable[None]]


class DeliveryReports:
    """The ``POST /twilio/status`` endpoint."""

    def __init__(
        self,
        ledger: MessageLedger,
        suppressions: SuppressionList,
        signature: TwilioSignature,
        on_undelivered: UndeliveredCallback | None = None,
    ) -> None:
        self._ledger = ledger
        self._suppressions = suppressions
        self._signature = signature
        self._on_undelivered = on_undelivered

    async def receive(self, request: Request) -> Response:
        # What needs no body first: an unsigned request is not worth reading.
        if problem := self._signature.header_problem(request):
            log.warning("twilio callback refused", reason=problem)
            return PlainTextResponse("forbidden", status_code=403)
        async with request.form() as form:
            problem = self._signature.problem(request, form)
            if problem:
                log.warning("twilio callback refused", reason=problem)
                return PlainTextResponse("forbidden", status_code=403)
            return await self._record(form, request.query_params.get(LEDGER_KEY_PARAM))

    async def _record(self, fields: FormData, ledger_key: str | None) -> Response:
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        status = fields.get("MessageStatus") or fields.get("SmsStatus")
        if not isinstance(sid, str) or not sid or not isinstance(status, str) or not status:
            log.warning("twilio callback without MessageSid or MessageStatus")
            return PlainTextResponse("MessageSid and MessageStatus are required", status_code=400)
        error_code = fields.get("ErrorCode")
        error_code = error_code if isinstance(error_code, str) and error_code else None

        # The URL is ours and signed over, so the key is one we gave; a row still
        # claimed belongs to a send that has not recorded this yet (or never will:
        # its worker died).
        if ledger_key and await self._ledger.mark_sent(ledger_key, sid, datetime.now(UTC)):
            log.info("twilio acceptance recorded from its report", message_sid=sid)
        if status in DELIVERY_STATUS_RANK:
            entry = await self._ledger.record_delivery_status(
                sid, status, error_code, datetime.now(UTC)
            )
            if entry is None:
                # Not ours, or the send has not recorded its SID yet. Retrying would
                # not help: answer 200 so Twilio does not.
                log.warning("twilio status for an unknown message", message_sid=sid, status=status)
            elif status in TWILIO_OUTCOMES:
                # The outcome, once per message, for the report (engine.messaging.engagement).
                await record_engagement(
                    self._ledger.sessions,
                    message_id=entry.message_id,
                    kind=TWILIO_OUTCOMES[status],
                    detail=_error_detail(error_code),
                )
        else:
            entry = None
            log.warning("twilio status not understood", message_sid=sid, status=status)

        reason = SUPPRESSING_ERROR_CODES.get(error_code or "")
        recipient = fields.get("To")
        if reason is not None and isinstance(recipient, str) and recipient:
            # The report is genuine (signed), so the number is bad whether or not the
            # ledger knows the message.
            channel = "whatsapp" if recipient.lower().startswith(WHATSAPP_PREFIX) else "sms"
            added = await self._suppressions.add(channel, recipient, f"{reason}, message {sid}")
            log.info(
                "number suppressed" if added else "number already suppressed",
                channel=channel,
                error_code=error_code,
                message_sid=sid,
            )
        if entry is None:
            return Response(status_code=200)
        if status in NOT_DELIVERED and entry.delivery_status == status:
            await self._tell_journey(entry.key, entry.journey_id, sid, status, error_code)
        log.debug("twilio status recorded", message_sid=sid, status=status, error_code=error_code)
        return Response(status_code=204)

    async def _tell_journey(
        self, key: str, journey_id: str, sid: str, status: str, error_code: str | None
    ) -> None:
        """Signal the journey; a journey that ended or Temporal out of reach is
        logged, not answered with an error: Twilio would not retry usefully."""
        if self._on_undelivered is None:
            return
        _, step, iteration, channel = _key_parts(key, journey_id)
        if channel not in (Channel.SMS, Channel.WHATSAPP):
            return
        report = UndeliveredMessage(
            step=step,
            iteration=iteration,
            channel=Channel(channel),
            message_id=sid,
            status=status,
            error_code=error_code or "",
        )
        try:
            await self._on_undelivered(journey_id, report)
        except Exception as err:  # any failure to tell is only logged
            log.warning(
                "journey not told of an undelivered text",
                journey=journey_id,
                error=type(err).__name__,
            )


def _key_parts(key: str, journey_id: str) -> tuple[str, str, int, str]:
    """(journey, step, iteration, channel) of a ledger key (``idempotency_key``)."""
    rest = key.removeprefix(journey_id + "/")
    step, iteration, channel = rest.rsplit("/", 2)
    return journey_id, step, int(iteration), channel


def _error_detail(error_code: str | None) -> str | None:
    """Twilio's error code as an engagement detail: digits and letters only."""
    code = "".join(char for char in error_code or "" if char.isascii() and char.isalnum())
    return f"twilio {code[:20]}" if code else None
