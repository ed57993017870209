"""Send one SMS or WhatsApp message through Twilio's Messages API with the official SDK.

The SDK runs on its aiohttp client (``AsyncTwilioHttpClient``). Twilio's answers are sorted
into two kinds of failure so that callers never look at HTTP details:

* ``PermanentSmsError``: sending this text to this address will never work (invalid or
  non-mobile number, unsubscribed recipient, WhatsApp user unreachable or outside the
  24-hour window, and any other 4xx apart from 429). Do not retry.
* ``TransientSmsError``: try again later (429, 5xx, connection errors, timeouts), with
  ``retry_after_seconds`` when Twilio sent ``Retry-After``.

Their texts keep Twilio's status, error code and words with phone numbers and email
addresses redacted (Twilio quotes the number it refused), and they do not chain the
SDK's exception, which would carry the unredacted text into logged tracebacks and
Temporal's failures.

The SDK's exceptions carry status, code and message but not the response headers, so the
``Retry-After`` of a failed request is read with an aiohttp trace hook that notes the last
response of the *current task* in a context variable (concurrent sends cannot mix them up).

``api_base_url`` points every Messages call somewhere else than ``https://api.twilio.com``
(the local fake in development and tests): Messages live on the SDK's ``api`` domain, whose
``base_url`` attribute every URL of that domain is built from.
"""

from __future__ import annotations

import asyncio
import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.async_http_client import AsyncTwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from activities.handover import NOT_STARTED, Handover
from engine.messaging.delivery_reports import LEDGER_KEY_PARAM, STATUS_PATH
from engine.platform.redaction import redact
from engine.platform.telemetry.provider_calls import provider_call

if TYPE_CHECKING:
    from engine.platform.settings import Settings

WHATSAPP_PREFIX = "whatsapp:"
# The StatusCallback URL names the ledger row of the message (its idempotency key,
# LEDGER_KEY_PARAM): Twilio reports every accepted message there, so the ledger
# learns of an acceptance even when the worker that sent it died before recording it.

# Twilio error codes that say "this address will not work", whatever the HTTP status.
INVALID_TO = 21211
UNSUBSCRIBED = 21610
NOT_MOBILE = 21614
WHATSAPP_UNREACHABLE = 63003
WHATSAPP_OUTSIDE_WINDOW = 63016
PERMANENT_CODES: frozenset[int] = frozenset(
    {INVALID_TO, UNSUBSCRIBED, NOT_MOBILE, WHATSAPP_UNREACHABLE, WHATSAPP_OUTSIDE_WINDOW}
)


class PermanentSmsError(Exception):
    """Twilio refused this message for good; ``code`` is Twilio's error code when known."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (Twilio error {self.code})" if self.code else self.message


class TransientSmsError(Exception):
    """Twilio could not take the message now; ``retry_after_seconds`` if it said when;
    ``maybe_delivered`` when the request went out but no answer came back (Twilio may
    have taken the message: its status callback will tell)."""

    def __init__(
        self,
        message: str,
        retry_after_seconds: float | None = None,
        *,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message, retry_after_seconds)
        self.message = message
        self.retry_after_seconds = retry_after_seconds
        self.maybe_delivered = maybe_delivered

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class SmsReceipt:
    sid: str
    status: str
    num_segments: int | None


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str = field(repr=False)
    messaging_service_sid: str | None = None
    from_number: str | None = None
    whatsapp_from: str | None = None
    # Somewhere else than https://api.twilio.com (the local fake); None for Twilio itself.
    api_base_url: str | None = None
    status_callback_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioConfig | None:
        """The configuration, or None when no account SID is set (SMS and WhatsApp off)."""
        if not settings.twilio_account_sid:
            return None
        if settings.twilio_auth_token is None or not settings.twilio_auth_token.get_secret_value():
            raise ValueError("twilio_auth_token is required when twilio_account_sid is set")
        if not (
            settings.twilio_messaging_service_sid
            or settings.twilio_from_number
            or settings.twilio_whatsapp_from
        ):
            raise ValueError(
                "Twilio needs a sender: set twilio_messaging_service_sid, twilio_from_number "
                "or twilio_whatsapp_from"
            )
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=settings.twilio_from_number,
            whatsapp_from=settings.twilio_whatsapp_from,
            api_base_url=settings.twilio_api_base_url,
            status_callback_url=settings.public_base_url.rstrip("/") + STATUS_PATH,
        )


@dataclass
class _LastResponse:
    status: int | None = None
    retry_after: str | None = None


# Set around each send; the aiohttp trace hook below fills it in. It runs inside the task
# that awaits the request, so each send sees only its own responses.
_last_response: ContextVar[_LastResponse | None] = ContextVar("twilio_last_response", default=None)


async def _note_response(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestEndParams,
) -> None:
    box = _last_response.get()
    if box is not None:
        box.status = params.response.status
        box.retry_after = params.response.headers.get("Retry-After")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _classify(
    status: int, code: int | None, message: str, box: _LastResponse
) -> PermanentSmsError | TransientSmsError:
    message = redact(message)
    if code in PERMANENT_CODES:
        return PermanentSmsError(code, message)
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(box.retry_after) if box.status == status else None
        return TransientSmsError(f"Twilio answered {status}: {message}", retry_after)
    if 400 <= status < 500:
        return PermanentSmsError(code, message)
    # Anything else unexpected (3xx) is not the recipient's fault: try again.
    return TransientSmsError(f"Twilio answered {status}: {message}", None)


def status_callback_for(callback_url: str, ledger_key: str | None) -> str:
    """``callback_url`` naming the ledger row ``ledger_key`` (when given)."""
    if ledger_key is None:
        return callback_url
    parts = urlsplit(callback_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query = [(name, value) for name, value in query if name != LEDGER_KEY_PARAM]
    query.append((LEDGER_KEY_PARAM, ledger_key))
    return urlunsplit(parts._replace(query=urlencode(query)))


def ledger_key_in(callback_url: str | None) -> str | None:
    """The ledger row a StatusCallback URL names (see ``status_callback_for``), if any."""
    if callback_url is None:
        return None
    values = parse_qs(urlsplit(callback_url).query).get(LEDGER_KEY_PARAM)
    return values[0] if values else None


def _whatsapp_address(address: str) -> str:
    return address if address.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + address


class TwilioSender:
    """Sends through one Twilio account; safe to share between concurrent activities.

    The SDK client (and its aiohttp session) is made on first use inside the running event
    loop; ``aclose()`` closes the session.
    """

    def __init__(self, config: TwilioConfig, *, timeout_seconds: float = 30.0) -> None:
        self.config = config
        self.timeout_seconds = timeout_seconds
        # twilio.rest.Client; the SDK ships without type information.
        self._twilio: Any = None

    def _client(self) -> Any:
        if self._twilio is None:
            asyncio.get_running_loop()  # the aiohttp session must belong to a running loop
            trace = aiohttp.TraceConfig()
            trace.on_request_end.append(_note_response)
            client = Client(
                self.config.account_sid,
                self.config.auth_token,
                http_client=AsyncTwilioHttpClient(trace_configs=[trace]),
            )
            if self.config.api_base_url:
                # Every Messages URL is the api domain's base_url + "/2010-04-01/...".
                client.api.base_url = self.config.api_base_url.rstrip("/")
                # TWILIO_EDGE / TWILIO_REGION from the environment would rewrite the host.
                client.edge = None
                client.region = None
            self._twilio = client
        return self._twilio

    def _addresses(self, to_e164: str, whatsapp: bool) -> dict[str, str]:
        config = self.config
        if whatsapp:
            to = _whatsapp_address(to_e164)
            if config.whatsapp_from:
                return {"to": to, "from_": _whatsapp_address(config.whatsapp_from)}
            if config.messaging_service_sid:
                return {"to": to, "messaging_service_sid": config.messaging_service_sid}
            raise PermanentSmsError(None, "no WhatsApp sender configured")
        if config.messaging_service_sid:
            return {"to": to_e164, "messaging_service_sid": config.messaging_service_sid}
        if config.from_number:
            return {"to": to_e164, "from_": config.from_number}
        raise PermanentSmsError(None, "no SMS sender configured")

    async def send(
        self,
        to_e164: str,
        body: str,
        *,
        whatsapp: bool = False,
        ledger_key: str | None = None,
        handover: Handover | None = None,
        content_sid: str | None = None,
        content_variables: str | None = None,
    ) -> SmsReceipt:
        """Hand one message to Twilio; returns what Twilio answered (status ``queued``).

        With ``content_sid`` the message is that Content template (an approved WhatsApp
        template) filled with ``content_variables`` (JSON), and ``body`` is not sent.

        With ``ledger_key``, Twilio's status callbacks for this message carry it
        (``LEDGER_KEY_PARAM`` in the callback URL's query). Past
        ``handover.start_by`` nothing is sent: TransientSmsError.
        """
        handover = handover or Handover()
        if handover.start_by is not None and asyncio.get_running_loop().time() >= handover.start_by:
            raise TransientSmsError(NOT_STARTED)
        arguments: dict[str, str] = self._addresses(to_e164, whatsapp)
        if content_sid is not None:
            arguments["content_sid"] = content_sid
            if content_variables is not None:
                arguments["content_variables"] = content_variables
        else:
            arguments["body"] = body
        if self.config.status_callback_url:
            arguments["status_callback"] = status_callback_for(
                self.config.status_callback_url, ledger_key
            )
        box = _LastResponse()
        token = _last_response.set(box)
        try:
            with provider_call("twilio", "send_whatsapp" if whatsapp else "send_sms"):
                async with asyncio.timeout(self.timeout_seconds):
                    handover.begun = True
                    message = await self._client().messages.create_async(**arguments)
        # Never chained (``from None``): the SDK's and aiohttp's exceptions quote
        # Twilio's text or the request unredacted; ours carry what matters.
        except TwilioRestException as err:
            raise _classify(int(err.status), err.code, str(err.msg), box) from None
        except TwilioServiceException as err:
            text = f"{err.title}: {err.detail}" if err.detail else str(err.title)
            raise _classify(int(err.status), err.code, text, box) from None
        except TimeoutError:
            raise TransientSmsError(
                f"Twilio did not answer within {self.timeout_seconds:g} s",
                None,
                maybe_delivered=True,
            ) from None
        except aiohttp.ClientConnectorError as err:
            raise TransientSmsError(f"cannot reach Twilio: {redact(str(err))}", None) from None
        except aiohttp.ClientError as err:
            # The request may have reached Twilio before the connection failed.
            raise TransientSmsError(
                f"no answer from Twilio: {type(err).__name__}: {redact(str(err))}",
                None,
                maybe_delivered=True,
            ) from None
        finally:
            _last_response.reset(token)
        segments = message.num_segments
        counted = isinstance(segments, str) and segments.isdigit()
        return SmsReceipt(
            sid=str(message.sid),
            status=str(message.status),
            num_segments=int(segments) if counted else None,
        )

    async def aclose(self) -> None:
        """Close the SDK's aiohttp session; a later send opens a new one."""
        client, self._twilio = self._twilio, None
        if client is not None:
            await client.http_client.close()

    async def __aenter__(self) -> TwilioSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
