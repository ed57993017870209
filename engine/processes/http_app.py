"""The HTTP app: health check, Twilio's status callbacks and inbound messages, and
the links customers click (unsubscribe, preference centre, feedback).

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

from activities.sms.twilio_sender import LEDGER_KEY_PARAM
from engine.customers.consent import ConsentLedger
from engine.customers.consent_changes import ConsentChanged
from engine.customers.feedback_responses import FeedbackResponses
from engine.customers.inbound_sms import InboundSms
from engine.customers.pages.common import Pages, SameOrigin
from engine.customers.pages.feedback import FeedbackPage, JourneyEvents
from engine.customers.pages.preference_centre import PreferenceCentre
from engine.customers.pages.unsubscribe import UnsubscribeLinks
from engine.messaging.ledger import DELIVERY_STATUS_RANK, MessageLedger
from engine.messaging.phone_index import PhoneIndex
from engine.messaging.suppressions import SuppressionList
from engine.platform.brand import Brand, default_brand
from engine.platform.links.tokens import LinkSigner
from engine.platform.logging import get_logger

log = get_logger(__name__)

TWILIO_STATUS_PATH = "/twilio/status"
TWILIO_INBOUND_PATH = "/twilio/inbound"
SIGNATURE_HEADER = "X-Twilio-Signature"
# engine.links.urls.unsubscribe_url makes these addresses.
UNSUBSCRIBE_PATH = "/u/{token}"
PREFERENCES_PATH = "/p/{token}"
FEEDBACK_PATH = "/f/{token}"

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
    brand: Brand | None = None,
    journeys: JourneyEvents | None = None,
    feedback_responses: FeedbackResponses | None = None,
    phones: PhoneIndex | None = None,
    on_consent_changed: ConsentChanged | None = None,
) -> Starlette:
    """The app. The feedback page needs ``journeys`` and ``feedback_responses``, and
    inbound messages need ``phones``; without them those routes are not served.
    ``on_consent_changed(customer_id)`` runs after a page or a text changed consent."""
    validator = RequestValidator(twilio_auth_token) if twilio_auth_token else None
    base_url = public_base_url.rstrip("/")
    unsubscribe = UnsubscribeLinks(consent, signer, on_consent_changed)
    pages = Pages(brand or default_brand())
    same_origin = SameOrigin(base_url)
    preferences = PreferenceCentre(consent, signer, pages, same_origin, on_consent_changed)

    def twilio_signed(request: Request, form: FormData) -> bool:
        """Is this form a genuine Twilio request (signature over the public URL)?"""
        signature = request.headers.get(SIGNATURE_HEADER)
        return (
            validator is not None
            and bool(signature)
            and _text_fields(form) is not None
            and bool(validator.validate(_public_url(base_url, request), form, signature))
        )

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
            ledger_key = request.query_params.get(LEDGER_KEY_PARAM)
            return await _record_status(ledger, suppressions, fields, ledger_key)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route(TWILIO_STATUS_PATH, twilio_status, methods=["POST"]),
        Route(UNSUBSCRIBE_PATH, unsubscribe.confirm_page, methods=["GET"]),
        Route(UNSUBSCRIBE_PATH, unsubscribe.unsubscribe, methods=["POST"]),
        Route(PREFERENCES_PATH, preferences.show, methods=["GET"]),
        Route(PREFERENCES_PATH, preferences.save, methods=["POST"]),
    ]
    if journeys is not None and feedback_responses is not None:
        feedback = FeedbackPage(journeys, feedback_responses, signer, pages, same_origin)
        routes.append(Route(FEEDBACK_PATH, feedback.show, methods=["GET"]))
        routes.append(Route(FEEDBACK_PATH, feedback.answer, methods=["POST"]))
    if phones is not None:
        inbound = InboundSms(
            signed=twilio_signed,
            consent=consent,
            suppressions=suppressions,
            phones=phones,
            brand=pages.brand,
            on_consent_changed=on_consent_changed,
        )
        routes.append(Route(TWILIO_INBOUND_PATH, inbound.receive, methods=["POST"]))
    return Starlette(routes=routes)


async def _record_status(
    ledger: MessageLedger,
    suppressions: SuppressionList,
    fields: FormData,
    ledger_key: str | None,
) -> Response:
    sid = fields.get("MessageSid") or fields.get("SmsSid")
    status = fields.get("MessageStatus") or fields.get("SmsStatus")
    if not isinstance(sid, str) or not sid or not isinstance(status, str) or not status:
        log.warning("twilio callback without MessageSid or MessageStatus")
        return PlainTextResponse("MessageSid and MessageStatus are required", status_code=400)
    error_code = fields.get("ErrorCode")
    error_code = error_code if isinstance(error_code, str) and error_code else None

    # Any report at all means Twilio accepted the message. The URL is ours and
    # signed over, so the key is one we gave; a row still claimed belongs to a send
    # that has not recorded this yet (or never will: its worker died).
    if ledger_key and await ledger.mark_sent(ledger_key, sid, datetime.now(UTC)):
        log.info("twilio acceptance recorded from its report", message_sid=sid)
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
