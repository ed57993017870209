"""The HTTP app: health check, Twilio's message status callbacks and unsubscribe links.

Twilio signs each callback with the account's auth token over the URL *it*
called and the form fields (``X-Twilio-Signature``). Behind a proxy or tunnel
that URL is not the one this process sees, so the signature is checked against
``public_base_url`` plus the request's path and query, never ``request.url``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from engine.database.consent import ConsentLedger
from engine.database.ledger import DELIVERY_STATUS_RANK, MessageLedger
from engine.database.suppressions import SuppressionList
from engine.http.unsubscribe import UnsubscribeLinks
from engine.links.tokens import LinkSigner
from engine.logging import get_logger

log = get_logger(__name__)

TWILIO_STATUS_PATH = "/twilio/status"
SIGNATURE_HEADER = "X-Twilio-Signature"
# engine.links.urls.unsubscribe_url makes these addresses.
UNSUBSCRIBE_PATH = "/u/{token}"

# Twilio error codes that mean the number must not be messaged again:
# 21610 the recipient replied STOP; 30005 unknown or inactive number;
# 30006 landline or unreachable carrier.
SUPPRESSING_ERROR_CODES = {
    "21610": "unsubscribed (Twilio 21610)",
    "30005": "unknown or inactive number (Twilio 30005)",
    "30006": "landline or unreachable carrier (Twilio 30006)",
}
WHATSAPP_PREFIX = "whatsapp:"


def build_http_app(
    *,
    ledger: MessageLedger,
    suppressions: SuppressionList,
    consent: ConsentLedger,
    signer: LinkSigner,
    twilio_auth_token: str | None,
    public_base_url: str,
) -> Starlette:
    validator = RequestValidator(twilio_auth_token) if twilio_auth_token else None
    base_url = public_base_url.rstrip("/")
    unsubscribe = UnsubscribeLinks(consent, signer)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def twilio_status(request: Request) -> Response:
        if validator is None:
            log.warning("twilio callback refused: no auth token configured")
            return _forbidden()
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            log.warning("twilio callback refused: no signature")
            return _forbidden()
        async with request.form() as form:
            fields = _text_fields(form)
            if fields is None or not validator.validate(
                _public_url(base_url, request), fields, signature
            ):
                log.warning("twilio callback refused: signature does not match")
                return _forbidden()
            return await _record_status(ledger, suppressions, fields)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route(TWILIO_STATUS_PATH, twilio_status, methods=["POST"]),
            Route(UNSUBSCRIBE_PATH, unsubscribe.confirm_page, methods=["GET"]),
            Route(UNSUBSCRIBE_PATH, unsubscribe.unsubscribe, methods=["POST"]),
        ]
    )


async def _record_status(
    ledger: MessageLedger, suppressions: SuppressionList, fields: FormData
) -> Response:
    sid = fields.get("MessageSid") or fields.get("SmsSid")
    status = fields.get("MessageStatus") or fields.get("SmsStatus")
    if not isinstance(sid, str) or not sid or not isinstance(status, str) or not status:
        log.warning("twilio callback without MessageSid or MessageStatus")
        return PlainTextResponse("MessageSid and MessageStatus are required", status_code=400)
    error_code = fields.get("ErrorCode")
    error_code = error_code if isinstance(error_code, str) and error_code else None

    if status in DELIVERY_STATUS_RANK:
        entry = await ledger.record_delivery_status(sid, status, error_code, datetime.now(UTC))
        if entry is None:
            # Not ours, or the send has not recorded its SID yet. Retrying would
            # not help: answer 200 so Twilio does not.
            log.warning("twilio status for an unknown message", message_sid=sid, status=status)
    else:
        entry = None
        log.warning("twilio status not understood", message_sid=sid, status=status)

    reason = SUPPRESSING_ERROR_CODES.get(error_code or "")
    recipient = fields.get("To")
    if reason is not None and isinstance(recipient, str) and recipient:
        # The report is genuine (signed), so the number is bad whether or not the
        # ledger knows the message.
        channel = "whatsapp" if recipient.lower().startswith(WHATSAPP_PREFIX) else "sms"
        added = await suppressions.add(channel, recipient, f"{reason}, message {sid}")
        log.info(
            "number suppressed" if added else "number already suppressed",
            channel=channel,
            error_code=error_code,
            message_sid=sid,
        )
    if entry is None:
        return Response(status_code=200)
    log.debug("twilio status recorded", message_sid=sid, status=status, error_code=error_code)
    return Response(status_code=204)


def _public_url(base_url: str, request: Request) -> str:
    """The URL Twilio called: the public base URL, this request's path and query."""
    path = request.url.path
    root_path = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    query = request.url.query
    return f"{base_url}{path}?{query}" if query else f"{base_url}{path}"


def _text_fields(form: FormData) -> FormData | None:
    # Twilio posts application/x-www-form-urlencoded text fields; a file upload
    # is not a status callback.
    if any(not isinstance(value, str) for _, value in form.multi_items()):
        return None
    return form


def _forbidden() -> Response:
    return PlainTextResponse("forbidden", status_code=403)
