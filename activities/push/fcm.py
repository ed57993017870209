"""Send one push notification to one device through Firebase Cloud Messaging's HTTP v1 API.

``POST {base}/v1/projects/{project}/messages:send`` with a JSON ``{"message": {...}}``
addressed to one registration token, authorised by an OAuth 2.0 access token that
google-auth obtains for the service account (JWT-bearer grant at the account's
``token_uri``) and refreshes before it expires. FCM answers ``{"name":
"projects/<project>/messages/<id>"}``, or an error body ``{"error": {"code",
"message", "status", "details": [{"@type": ".../google.firebase.fcm.v1.FcmError",
"errorCode": ...}]}}``, which is sorted into:

* ``FcmTokenGone``: the token is no longer valid (404 / ``UNREGISTERED``): the app
  was uninstalled or the token rotated; the device must be forgotten.
* ``FcmRefused``: this message can never be sent to this token as it is (400
  ``INVALID_ARGUMENT``, 403 ``SENDER_ID_MISMATCH``, other 4xx): do not retry.
* ``FcmUnavailable``: try again later (429 ``QUOTA_EXCEEDED``, 5xx, network), with
  ``retry_after_seconds`` from ``Retry-After`` when FCM sent one.

``api_base_url`` and the service account's ``token_uri`` point somewhere else than
Google in development and tests (``engine.devstack.fcm_fake``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import service_account

from activities.push.failures import DeviceGone, PushFailure, PushRefused, PushUnavailable
from activities.sms.twilio_sender import parse_retry_after
from engine.platform.telemetry.provider_calls import provider_call

if TYPE_CHECKING:
    from engine.platform.settings import Settings

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
UNREGISTERED = "UNREGISTERED"


class FcmTokenGone(DeviceGone):
    """FCM no longer knows this registration token."""


class FcmRefused(PushRefused):
    """FCM refused this message for this token for good."""


class FcmUnavailable(PushUnavailable):
    """FCM could not take the message now."""


@dataclass(frozen=True)
class PushNotification:
    """What one device shows: title and body, the link it opens, and data for the app."""

    title: str
    body: str
    link: str = ""
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FcmConfig:
    project_id: str
    service_account_info: dict[str, Any] = field(repr=False)
    api_base_url: str = "https://fcm.googleapis.com"
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FcmConfig | None:
        """The configuration, or None when no project is set (push is then off)."""
        if not settings.fcm_project_id:
            return None
        if settings.fcm_service_account is None:
            raise ValueError(
                "fcm_service_account (the service account's JSON key, or "
                "AFTERCARE_FCM_SERVICE_ACCOUNT_FILE) is required when fcm_project_id is set"
            )
        try:
            info = json.loads(settings.fcm_service_account.get_secret_value())
        except json.JSONDecodeError as err:
            # The position only: the text is a private key.
            raise ValueError(
                f"AFTERCARE_FCM_SERVICE_ACCOUNT is not JSON (line {err.lineno}, column {err.colno})"
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ValueError('AFTERCARE_FCM_SERVICE_ACCOUNT must be a "service_account" key')
        return cls(
            project_id=settings.fcm_project_id,
            service_account_info=info,
            api_base_url=settings.fcm_api_base_url,
            timeout_seconds=settings.fcm_timeout_seconds,
        )

    @property
    def send_url(self) -> str:
        return f"{self.api_base_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send"


def message_body(token: str, notification: PushNotification) -> dict[str, Any]:
    """The ``messages:send`` request for one device: a notification FCM shows itself,
    the link in ``data`` for the app and as the click target of a web notification."""
    data = dict(notification.data)
    if notification.link:
        data["link"] = notification.link
    message: dict[str, Any] = {
        "token": token,
        "notification": {"title": notification.title, "body": notification.body},
        "data": data,
    }
    if notification.link.startswith("https://"):
        message["webpush"] = {"fcm_options": {"link": notification.link}}
    return {"message": message}


class FcmSender:
    """Sends through one Firebase project; safe to share between concurrent activities."""

    def __init__(self, config: FcmConfig) -> None:
        self.config = config
        self._credentials: Any = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            config.service_account_info, scopes=[FCM_SCOPE]
        )
        self._refreshing = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None

    async def _access_token(self) -> str:
        async with self._refreshing:
            if not self._credentials.valid:
                # google-auth's transports are blocking; a refresh is rare (hourly).
                await asyncio.to_thread(self._credentials.refresh, GoogleAuthRequest())
            return str(self._credentials.token)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.timeout_seconds, trust_env=False)
        return self._http

    async def send(self, token: str, notification: PushNotification) -> str:
        """Hand the notification for one device to FCM; returns FCM's message name."""
        try:
            access_token = await self._access_token()
        except GoogleAuthError as err:
            raise FcmUnavailable(f"no FCM access token: {err}") from None
        except OSError as err:
            raise FcmUnavailable(f"cannot reach the token endpoint: {err}") from None
        try:
            with provider_call("fcm", "send_push"):
                response = await self._client().post(
                    self.config.send_url,
                    json=message_body(token, notification),
                    headers={"Authorization": f"Bearer {access_token}"},
                )
        except httpx.ConnectError as err:
            raise FcmUnavailable(f"cannot reach FCM: {err}") from None
        except httpx.HTTPError as err:
            # The request may have reached FCM before the connection failed.
            raise FcmUnavailable(
                f"no answer from FCM: {type(err).__name__}", maybe_delivered=True
            ) from None
        if response.status_code == 200:
            name = response.json().get("name")
            if not isinstance(name, str) or not name:
                raise FcmUnavailable("FCM answered 200 without a message name")
            return name
        if response.status_code == 401:
            # The access token was refused (revoked, clock skew): fetch a new one.
            self._credentials.token = None
        raise classify(response)

    async def aclose(self) -> None:
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()


def classify(response: httpx.Response) -> PushFailure:
    """The failure an FCM error response stands for."""
    status = response.status_code
    error_status, error_code, message = _error_of(response)
    text = f"FCM answered {status} {error_status or ''}: {message}".replace("  ", " ")
    if error_code:
        text += f" ({error_code})"
    if status == 404 or error_code == UNREGISTERED:
        return FcmTokenGone(text)
    if status == 429 or status >= 500 or status == 401:
        return FcmUnavailable(text, parse_retry_after(response.headers.get("Retry-After")))
    if 400 <= status < 500:
        return FcmRefused(text)
    return FcmUnavailable(text)


def _error_of(response: httpx.Response) -> tuple[str, str, str]:
    """(status, FcmError errorCode, message) of an error body; blanks when absent."""
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return "", "", response.reason_phrase
    if not isinstance(error, dict):
        return "", "", response.reason_phrase
    code = ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            code = str(detail.get("errorCode", ""))
    return str(error.get("status", "")), code, str(error.get("message", ""))
