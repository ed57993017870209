"""A local stand-in for Twilio's Messages REST API (2010-04-01), as a Starlette app.

It speaks the shapes Twilio documents for ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``
and ``GET .../Messages/{Sid}.json``: form-encoded requests with HTTP Basic auth (account SID and
auth token), Message resources as JSON, errors as ``{code, message, more_info, status}``. It is
stricter than Twilio in one way on purpose: a form field that Twilio does not document for a
create is refused (400), so a client that works against the fake sends only documented fields.

Tests and chaos runs steer it through ``unsubscribed`` (those numbers answer 21610),
``undeliverable`` (accepted, then reported ``undelivered`` with 30003), ``fail_next`` (forced
HTTP answers such as 429 with ``Retry-After``, each used up by one request) and ``fail_all`` /
``recover`` (an outage: every request gets the forced answer until recovered). Accepted messages
are kept in ``messages`` and, when a folder is given, written there as one JSON file each.

When a create carries ``StatusCallback``, the fake later POSTs the status changes (``sent``, then
``delivered`` or ``undelivered``) to that URL, signed with ``X-Twilio-Signature`` the way Twilio
signs them, so the receiving endpoint's signature check is exercised for real.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import itertools
import json
import os
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from activities.sms.segments import segment_info
from engine.platform.http_server import serve_http
from engine.platform.logging import get_logger

log = get_logger(__name__)

API_VERSION = "2010-04-01"
# Status callbacks posted at once, at most; the rest wait their turn (Twilio, too,
# delivers callbacks from a bounded pool). The HTTP client's pool rescans its whole
# queue for every request, so a burst of texts must not all queue there at once.
CALLBACKS_IN_FLIGHT = 16

# Every form field the published OpenAPI description lists for CreateMessageRequest
# (tests compare this set with ../shared/twilio/messages_v2010.openapi.json).
CREATE_MESSAGE_FIELDS: frozenset[str] = frozenset(
    {
        "To",
        "StatusCallback",
        "ApplicationSid",
        "MaxPrice",
        "ProvideFeedback",
        "Attempt",
        "ValidityPeriod",
        "ForceDelivery",
        "ContentRetention",
        "AddressRetention",
        "SmartEncoded",
        "PersistentAction",
        "TrafficType",
        "ShortenUrls",
        "ScheduleType",
        "SendAt",
        "SendAsMms",
        "ContentVariables",
        "RiskCheck",
        "From",
        "FallbackFrom",
        "MessagingServiceSid",
        "Body",
        "MediaUrl",
        "ContentSid",
    }
)
# Fields that may repeat in one request (arrays in the description).
_LIST_FIELDS = frozenset({"MediaUrl", "PersistentAction"})

ACCOUNT_SID_PATTERN = re.compile(r"AC[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_WHATSAPP = "whatsapp:"
_MAX_BODY = 1600

# Twilio error codes the fake answers with.
UNKNOWN_PARAMETER = 20001
AUTHENTICATE = 20003
METHOD_NOT_ALLOWED = 20004
NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
INTERNAL_ERROR = 20500
BODY_REQUIRED = 21602
FROM_REQUIRED = 21603
TO_REQUIRED = 21604
INVALID_STATUS_CALLBACK = 21609
INVALID_TO = 21211
UNSUBSCRIBED = 21610
BODY_TOO_LONG = 21617
UNREACHABLE = 30003
CONTENT_SID_REQUIRED = 21654
INVALID_CONTENT_SID = 21655
INVALID_CONTENT_VARIABLES = 21656
WHATSAPP_OUTSIDE_WINDOW = 63016
# A WhatsApp customer-service window: free-form text for this long after the
# customer's own message.
WHATSAPP_WINDOW = timedelta(hours=24)
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")


def _rfc2822(moment: datetime | None) -> str | None:
    # Twilio writes "Thu, 24 Aug 2023 05:01:45 +0000".
    return None if moment is None else format_datetime(moment.replace(microsecond=0))


def _bare_number(address: str) -> str:
    return address.removeprefix(_WHATSAPP)


@dataclass
class FakeMessage:
    """One accepted message, as the fake keeps and reports it."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    media: list[str]
    # Every form field exactly as received (repeated fields keep all values).
    params: dict[str, list[str]]
    num_segments: int
    date_created: datetime
    status: str = "queued"
    date_sent: datetime | None = None
    date_updated: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    path: Path | None = None

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def resource(self) -> dict[str, Any]:
        """The Message resource JSON (``api.v2010.account.message``)."""
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated or self.date_created),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media)),
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": self.uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": self.uri,
        }

    def record(self) -> dict[str, Any]:
        """What the folder keeps: the resource plus what was asked for."""
        return {
            **self.resource(),
            "media": self.media,
            "status_callback": self.status_callback,
            "params": self.params,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """Any request to the API routes, with the answer given (JSON body)."""

    method: str
    path: str
    params: dict[str, list[str]]
    status_code: int
    answer: dict[str, Any]


@dataclass(frozen=True)
class StatusCallbackAttempt:
    url: str
    params: dict[str, str]
    signature: str
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class ForcedAnswer:
    status: int
    code: int
    message: str
    retry_after: int | None


_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "Authenticate",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _forced_answer(
    status: int, retry_after: int | None, code: int | None, message: str | None
) -> ForcedAnswer:
    if not 400 <= status <= 599:
        raise ValueError(f"a forced answer is an HTTP error status, got {status}")
    if retry_after is not None and retry_after < 0:
        raise ValueError(f"retry_after is a number of seconds, got {retry_after}")
    return ForcedAnswer(
        status=status,
        code=code if code is not None else 20000 + status,
        message=message or _DEFAULT_MESSAGES.get(status, "Error"),
        retry_after=retry_after,
    )


def twilio_error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer in Twilio's shape."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
        headers=dict(headers or {}),
    )


def _resource_not_found(request: Request) -> JSONResponse:
    return twilio_error(404, NOT_FOUND, f"The requested resource {request.url.path} was not found")


def _form_fields(form: FormData) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        # Uploaded files have no place in this API; keep their name so the request is refused.
        fields.setdefault(key, []).append(value if isinstance(value, str) else "")
    return fields


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


class TwilioFake:
    """State and behaviour of the fake; ``app`` is the ASGI application to serve."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        folder: Path | None = None,
        *,
        unsubscribed: Iterable[str] = (),
        undeliverable: Iterable[str] = (),
        callback_delay_seconds: float = 0.0,
        callback_timeout_seconds: float = 10.0,
        callbacks_in_flight: int = CALLBACKS_IN_FLIGHT,
        answer_delay_seconds: float = 0.0,
        whatsapp_windows: bool = False,
    ) -> None:
        if not ACCOUNT_SID_PATTERN.fullmatch(account_sid):
            raise ValueError(f"an account SID is 'AC' and 32 hex digits, got {account_sid!r}")
        if not auth_token:
            raise ValueError("the auth token must not be empty")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.folder = folder
        self.unsubscribed: set[str] = set(unsubscribed)
        self.undeliverable: set[str] = set(undeliverable)
        self.callback_delay_seconds = callback_delay_seconds
        # WhatsApp's rule, when on: free-form text (a Body, no ContentSid) only within
        # 24 hours of the number's own message (``customer_wrote``), else 63016.
        self.whatsapp_windows = whatsapp_windows
        self.last_inbound: dict[str, datetime] = {}
        self.callback_timeout_seconds = callback_timeout_seconds
        # A slow Twilio: each message is taken (and reported on) at once, but the
        # answer to its create request comes this much later.
        self.answer_delay_seconds = answer_delay_seconds
        if callbacks_in_flight < 1:
            raise ValueError(f"callbacks_in_flight must be at least 1, got {callbacks_in_flight}")
        self.callbacks_in_flight = callbacks_in_flight
        self._callback_slots: asyncio.Semaphore | None = None
        self.messages: list[FakeMessage] = []
        self.requests: list[RecordedRequest] = []
        self.callbacks: list[StatusCallbackAttempt] = []
        self._by_sid: dict[str, FakeMessage] = {}
        self._forced: deque[ForcedAnswer] = deque()
        self._outage: ForcedAnswer | None = None
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._counter = itertools.count()
        self._address: tuple[str, int] | None = None
        messages = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"
        self.app = Starlette(
            routes=[
                Route(f"{messages}.json", self._create, methods=["POST"]),
                Route(f"{messages}/{{sid}}.json", self._fetch, methods=["GET"]),
            ],
            exception_handlers={404: self._not_found, 405: self._method_not_allowed},
        )

    # -- steering ---------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        *,
        retry_after: int | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next API request with this error instead (queued; one request each)."""
        self._forced.append(_forced_answer(status, retry_after, code, message))

    def fail_all(
        self,
        status: int = 500,
        *,
        retry_after: int | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer every API request with this error until :meth:`recover` (an outage or a
        rate-limit burst); queued ``fail_next`` answers still go first."""
        self._outage = _forced_answer(status, retry_after, code, message)

    def customer_wrote(self, number: str, at: datetime | None = None) -> None:
        """The customer at ``number`` sent a WhatsApp message: their window opens."""
        self.last_inbound[_bare_number(number)] = at or datetime.now(UTC)

    def recover(self) -> None:
        """End a :meth:`fail_all` outage: requests are served normally again."""
        self._outage = None

    @property
    def pending_failures(self) -> int:
        return len(self._forced)

    @property
    def failing(self) -> ForcedAnswer | None:
        """The answer every request gets during a :meth:`fail_all` outage, else None."""
        return self._outage

    # -- serving ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._address is None:
            raise RuntimeError("the fake is not being served (use serve_twilio_fake)")
        return self._address[1]

    @property
    def base_url(self) -> str:
        """Where the SDK should send its requests, e.g. ``http://127.0.0.1:8899``."""
        if self._address is None:
            raise RuntimeError("the fake is not being served (use serve_twilio_fake)")
        host = self._address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._address[1]}"

    def _served_at(self, host: str, port: int) -> None:
        self._address = (host, port)

    # -- waiting ----------------------------------------------------------------------------

    async def wait_for(self, count: int, seconds: float = 30.0) -> list[FakeMessage]:
        """Wait until at least ``count`` messages have been accepted."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.messages) >= count), seconds
            )
            return list(self.messages)

    async def wait_for_callbacks(
        self, count: int, seconds: float = 30.0
    ) -> list[StatusCallbackAttempt]:
        """Wait until at least ``count`` status callbacks have been attempted."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.callbacks) >= count), seconds
            )
            return list(self.callbacks)

    async def settle(self) -> None:
        """Wait until every status progression started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop pending status progressions and close the callback HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- handlers ---------------------------------------------------------------------------

    async def _answer(
        self,
        request: Request,
        params: dict[str, list[str]],
        response: JSONResponse,
    ) -> JSONResponse:
        answer = json.loads(bytes(response.body)) if response.body else {}
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                params=params,
                status_code=response.status_code,
                answer=answer,
            )
        )
        return response

    def _gatekeeper(self, request: Request) -> JSONResponse | None:
        """Forced failures first, then authentication and the account in the path."""
        forced = self._forced.popleft() if self._forced else self._outage
        if forced is not None:
            headers = {}
            if forced.retry_after is not None:
                headers["Retry-After"] = str(forced.retry_after)
            return twilio_error(forced.status, forced.code, forced.message, headers)
        credentials = _basic_credentials(request)
        authenticated = credentials is not None and (
            hmac.compare_digest(credentials[0].encode(), self.account_sid.encode())
            and hmac.compare_digest(credentials[1].encode(), self.auth_token.encode())
        )
        # Credentials for one account used on another account's path get 20003 from Twilio too.
        if not authenticated or request.path_params.get("account_sid") != self.account_sid:
            return twilio_error(
                401,
                AUTHENTICATE,
                "Authenticate",
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        return None

    async def _create(self, request: Request) -> Response:
        params: dict[str, list[str]] = {}
        refused = self._gatekeeper(request)
        if refused is None:
            async with request.form() as form:
                params = _form_fields(form)
            refused = self._validate_create(params)
        if refused is not None:
            return await self._answer(request, params, refused)
        message = self._accept(params)
        async with self._changed:
            self.messages.append(message)
            self._by_sid[message.sid] = message
            self._changed.notify_all()
        self._write(message)
        self._start_progress(message)
        if self.answer_delay_seconds:
            await asyncio.sleep(self.answer_delay_seconds)
        return await self._answer(request, params, JSONResponse(message.resource(), 201))

    async def _fetch(self, request: Request) -> Response:
        refused = self._gatekeeper(request)
        if refused is not None:
            return await self._answer(request, {}, refused)
        message = self._by_sid.get(request.path_params["sid"])
        if message is None:
            return await self._answer(request, {}, _resource_not_found(request))
        return await self._answer(request, {}, JSONResponse(message.resource(), 200))

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return _resource_not_found(request)

    async def _method_not_allowed(self, request: Request, exc: Exception) -> Response:
        return twilio_error(405, METHOD_NOT_ALLOWED, "Method not allowed")

    # -- create -----------------------------------------------------------------------------

    def _validate_create(self, params: dict[str, list[str]]) -> JSONResponse | None:
        unknown = sorted(set(params) - CREATE_MESSAGE_FIELDS)
        if unknown:
            return twilio_error(400, UNKNOWN_PARAMETER, f"Unknown parameter: {', '.join(unknown)}")
        repeated = sorted(k for k, v in params.items() if len(v) > 1 and k not in _LIST_FIELDS)
        if repeated:
            return twilio_error(
                400, UNKNOWN_PARAMETER, f"Parameter given more than once: {', '.join(repeated)}"
            )

        def one(name: str) -> str:
            return params.get(name, [""])[0]

        to, from_, service = one("To"), one("From"), one("MessagingServiceSid")
        if not to:
            return twilio_error(400, TO_REQUIRED, "A 'To' phone number is required.")
        if not from_ and not service:
            return twilio_error(400, FROM_REQUIRED, "A 'From' phone number is required.")
        if not one("Body") and not params.get("MediaUrl") and not one("ContentSid"):
            return twilio_error(400, BODY_REQUIRED, "Message body is required.")
        if len(one("Body")) > _MAX_BODY:
            return twilio_error(
                400,
                BODY_TOO_LONG,
                f"The concatenated message body exceeds the {_MAX_BODY} character limit.",
            )
        if not self._valid_to(to, from_):
            return twilio_error(
                400, INVALID_TO, f"The 'To' number {to} is not a valid phone number."
            )
        callback = one("StatusCallback")
        if callback:
            parts = urlsplit(callback)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return twilio_error(
                    400,
                    INVALID_STATUS_CALLBACK,
                    f"The StatusCallback URL {callback} is not a valid URL.",
                )
        if _bare_number(to) in self.unsubscribed:
            return twilio_error(400, UNSUBSCRIBED, "Attempt to send to unsubscribed recipient")
        return self._validate_content(params, to)

    def _validate_content(self, params: dict[str, list[str]], to: str) -> JSONResponse | None:
        """A Content template (ContentSid, ContentVariables) as Twilio checks it, and
        WhatsApp's window for free-form text."""
        sid = params.get("ContentSid", [""])[0]
        variables = params.get("ContentVariables", [""])[0]
        if variables and not sid:
            return twilio_error(
                400, CONTENT_SID_REQUIRED, "A ContentSid must be specified with ContentVariables."
            )
        if sid and not _CONTENT_SID.fullmatch(sid):
            return twilio_error(400, INVALID_CONTENT_SID, "The ContentSid is Invalid.")
        if variables:
            try:
                parsed = json.loads(variables)
            except ValueError:
                parsed = None
            valid = isinstance(parsed, dict) and all(
                isinstance(value, str) and value for value in parsed.values()
            )
            if not valid:
                return twilio_error(
                    400, INVALID_CONTENT_VARIABLES, "The ContentVariables Parameter is invalid."
                )
        if self.whatsapp_windows and to.startswith(_WHATSAPP) and not sid:
            last = self.last_inbound.get(_bare_number(to))
            if last is None or datetime.now(UTC) - last > WHATSAPP_WINDOW:
                return twilio_error(
                    400,
                    WHATSAPP_OUTSIDE_WINDOW,
                    "Outside messaging window. For WhatsApp, use a Message Template instead.",
                )
        return None

    @staticmethod
    def _valid_to(to: str, from_: str) -> bool:
        if from_.startswith(_WHATSAPP):
            return to.startswith(_WHATSAPP) and bool(_E164.fullmatch(_bare_number(to)))
        if from_:
            return bool(_E164.fullmatch(to))
        # Only a Messaging Service: it may hold SMS and WhatsApp senders alike.
        return bool(_E164.fullmatch(_bare_number(to)))

    def _accept(self, params: dict[str, list[str]]) -> FakeMessage:
        def optional(name: str) -> str | None:
            return params.get(name, [""])[0] or None

        media = list(params.get("MediaUrl", []))
        body = optional("Body") or ""
        to = params["To"][0]
        prefix = "MM" if media else "SM"
        return FakeMessage(
            sid=prefix + uuid.uuid4().hex,
            account_sid=self.account_sid,
            to=to,
            from_=optional("From"),
            body=body,
            messaging_service_sid=optional("MessagingServiceSid"),
            status_callback=optional("StatusCallback"),
            media=media,
            params={key: list(values) for key, values in params.items()},
            # A WhatsApp message is not split into SMS segments.
            num_segments=1 if to.startswith(_WHATSAPP) else segment_info(body).segments,
            date_created=datetime.now(UTC),
        )

    def _write(self, message: FakeMessage) -> None:
        if self.folder is None:
            return
        if message.path is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{message.date_created:%Y%m%dT%H%M%S%f}-{next(self._counter):06d}"
            message.path = self.folder / f"{name}-{message.sid}.json"
        # Write then rename, so a reader never sees half a file.
        partial = message.path.with_suffix(".part")
        partial.write_text(json.dumps(message.record(), indent=2, ensure_ascii=False) + "\n")
        os.replace(partial, message.path)

    # -- status progression and callbacks ---------------------------------------------------

    def _start_progress(self, message: FakeMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._progress(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _progress(self, message: FakeMessage) -> None:
        await asyncio.sleep(self.callback_delay_seconds)
        now = datetime.now(UTC)
        message.status, message.date_sent, message.date_updated = "sent", now, now
        self._write(message)
        await self._callback(message)
        await asyncio.sleep(self.callback_delay_seconds)
        message.date_updated = datetime.now(UTC)
        if _bare_number(message.to) in self.undeliverable:
            message.status = "undelivered"
            message.error_code = UNREACHABLE
            message.error_message = "Unreachable destination handset"
        else:
            message.status = "delivered"
        self._write(message)
        await self._callback(message)

    async def _callback(self, message: FakeMessage) -> None:
        url = message.status_callback
        if url is None:
            return
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": message.status,
            "SmsStatus": message.status,
            "AccountSid": message.account_sid,
            "To": message.to,
            "ApiVersion": API_VERSION,
        }
        if message.from_ is not None:
            params["From"] = message.from_
        if message.messaging_service_sid is not None:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
        signature = str(RequestValidator(self.auth_token).compute_signature(url, params))
        status_code: int | None = None
        error: str | None = None
        if self._callback_slots is None:  # made on the serving loop
            self._callback_slots = asyncio.Semaphore(self.callbacks_in_flight)
        try:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self.callback_timeout_seconds)
            async with self._callback_slots:
                reply = await self._http.post(
                    url,
                    data=params,
                    headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
                )
            status_code = reply.status_code
            if reply.status_code >= 400:
                log.warning(
                    "twilio fake status callback refused",
                    url=url,
                    sid=message.sid,
                    status=reply.status_code,
                )
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"
            log.warning("twilio fake status callback failed", url=url, sid=message.sid, error=error)
        async with self._changed:
            self.callbacks.append(
                StatusCallbackAttempt(
                    url=url,
                    params=params,
                    signature=signature,
                    status_code=status_code,
                    error=error,
                )
            )
            self._changed.notify_all()


def build_twilio_fake(
    account_sid: str, auth_token: str, folder: Path | None = None, **options: Any
) -> TwilioFake:
    """A fake Twilio for one account; serve ``fake.app`` or use ``serve_twilio_fake``.
    ``options`` are those of :class:`TwilioFake`."""
    return TwilioFake(account_sid, auth_token, folder, **options)


@contextlib.asynccontextmanager
async def serve_twilio_fake(
    host: str,
    port: int,
    account_sid: str,
    auth_token: str,
    folder: Path | None = None,
    **options: Any,
) -> AsyncIterator[TwilioFake]:
    """Serve a fake Twilio over HTTP; ``fake.base_url`` is what the SDK should call."""
    fake = build_twilio_fake(account_sid, auth_token, folder, **options)
    try:
        async with serve_http(fake.app, host, port) as served:
            fake._served_at(served.host, served.port)
            yield fake
    finally:
        await fake.aclose()


def new_account_sid() -> str:
    """A random, well-formed account SID for a fake account."""
    return "AC" + uuid.uuid4().hex


__all__ = [
    "CREATE_MESSAGE_FIELDS",
    "FakeMessage",
    "ForcedAnswer",
    "RecordedRequest",
    "StatusCallbackAttempt",
    "TwilioFake",
    "build_twilio_fake",
    "new_account_sid",
    "serve_twilio_fake",
    "twilio_error",
]
