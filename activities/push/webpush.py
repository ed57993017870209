"""Send one push notification to one browser by the Web Push protocol (RFC 8030):
the push channel's second transport, for the Push API subscriptions shops register.

pywebpush encrypts the payload to the subscription's keys (``aes128gcm``, RFC 8291)
and POSTs it to the subscription's endpoint with ``TTL``, ``Urgency`` and a VAPID
``Authorization: vapid t=<JWT>, k=<public key>`` (RFC 8292) signed with the
deployment's key, its ``aud`` the endpoint's origin and its ``exp`` 12 hours ahead.
The push service answers 201 Created with the message's URL in ``Location``, or:

* ``WebPushGone``: 404 / 410, the subscription expired or the user revoked it; the
  device must be forgotten.
* ``WebPushRefused``: any other 4xx (400, 401/403 for a token the service does not
  accept, as when the subscription was made for another VAPID key, 413 too large):
  not this message to this subscription, not again.
* ``WebPushUnavailable``: 429, 5xx or the network; try again later, after
  ``Retry-After`` when the service sent one.

The payload is JSON the shop's service worker shows: ``{"title", "body", "url",
"data"}`` (docs/channels.md#web-push).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from py_vapid import Vapid02, VapidException
from pywebpush import WebPushException, webpush_async

from activities.push.failures import DeviceGone, PushFailure, PushRefused, PushUnavailable
from activities.push.fcm import PushNotification
from activities.sms.twilio_sender import parse_retry_after
from engine.messaging.web_push_keys import WebPushKeys, origin_of
from engine.platform.telemetry.provider_calls import provider_call
from engine.platform.vapid import load_private_key, public_key_of

if TYPE_CHECKING:
    from engine.platform.settings import Settings

# How long a push service keeps a message for a browser that is offline: past a day
# news of an order is better read in the email that follows a failed push.
TTL_SECONDS = 24 * 3600
# The message's name as the ledger keeps it (provider_message_id, 300 characters, with
# room for the channel's "(+N devices)"); some services' message URLs are longer.
MAX_NAME = 200


class WebPushGone(DeviceGone):
    """The push service no longer knows this subscription (404, 410)."""


class WebPushRefused(PushRefused):
    """The push service refused this message for this subscription for good."""


class WebPushUnavailable(PushUnavailable):
    """The push service could not take the message now (429, 5xx, the network)."""


@dataclass(frozen=True)
class WebPushConfig:
    private_key: str = field(repr=False)
    subject: str
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WebPushConfig | None:
        """The configuration, or None without a VAPID key (subscriptions are then
        skipped). The settings judged the key and the subject already."""
        if settings.webpush_vapid_private_key is None:
            return None
        if not settings.webpush_vapid_subject:
            raise ValueError(
                "AFTERCARE_WEBPUSH_VAPID_SUBJECT is required when "
                "AFTERCARE_WEBPUSH_VAPID_PRIVATE_KEY is set"
            )
        return cls(
            private_key=settings.webpush_vapid_private_key.get_secret_value(),
            subject=settings.webpush_vapid_subject,
            timeout_seconds=settings.webpush_timeout_seconds,
        )


def payload_of(notification: PushNotification) -> str:
    """What the service worker receives, decrypted: title, body, the link it opens
    on a click, and the journey's data."""
    return json.dumps(
        {
            "title": notification.title,
            "body": notification.body,
            "url": notification.link,
            "data": notification.data,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


class WebPushSender:
    """Signs with one VAPID key; safe to share between concurrent activities. One
    HTTP session (its connection pool) serves every send until ``aclose``."""

    def __init__(self, config: WebPushConfig) -> None:
        self.config = config
        key = load_private_key(config.private_key)
        self._vapid = Vapid02(key, conf={"no-strict": True})
        # What the shop's page passes to PushManager.subscribe() as applicationServerKey.
        self.public_key = public_key_of(key)
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds),
                trust_env=False,
            )
        return self._http

    async def send(
        self, endpoint: str, keys: WebPushKeys, notification: PushNotification, *, urgent: bool
    ) -> str:
        """Hand the notification for one browser to its push service; returns the
        message's URL (``Location``), or the service's origin when it gave none."""
        origin = origin_of(endpoint)
        subscription: dict[str, Any] = {
            "endpoint": endpoint,
            "keys": {"p256dh": keys.p256dh, "auth": keys.auth},
        }
        try:
            with provider_call("webpush", "send_push"):
                response = await webpush_async(
                    subscription,
                    data=payload_of(notification),
                    vapid_private_key=self._vapid,
                    # A dict per send: pywebpush adds aud and exp to the one it gets.
                    vapid_claims={"sub": self.config.subject},
                    ttl=TTL_SECONDS,
                    headers={"Urgency": "high" if urgent else "normal"},
                    timeout=self.config.timeout_seconds,
                    aiohttp_session=self._session(),
                )
        except WebPushException as err:
            raise classify(err, origin) from None
        except aiohttp.ClientConnectorError as err:
            raise WebPushUnavailable(f"cannot reach {origin}: {err.os_error}") from None
        except (aiohttp.ClientError, TimeoutError) as err:
            # The request may have reached the push service before the failure.
            raise WebPushUnavailable(
                f"no answer from {origin}: {type(err).__name__}", maybe_delivered=True
            ) from None
        except (VapidException, ValueError) as err:
            raise WebPushRefused(f"cannot sign or encrypt for {origin}: {err}") from None
        if isinstance(response, str):  # only with curl=True, never asked for
            raise WebPushRefused("pywebpush answered without sending")
        location = str(response.headers.get("Location") or "") or origin
        return location[:MAX_NAME]

    async def aclose(self) -> None:
        session, self._http = self._http, None
        if session is not None:
            await session.close()


def classify(error: WebPushException, origin: str) -> PushFailure:
    """The failure a push service's answer (or pywebpush's refusal) stands for."""
    status: int | None = error.status_code
    if status is None:
        # Raised before any request: the subscription's keys are unusable.
        return WebPushRefused(f"cannot send to {origin}: {error.message}")
    reason = str(getattr(error.response, "reason", "") or "")
    text = f"{origin} answered {status} {reason}".rstrip()
    if status in (404, 410):
        return WebPushGone(text)
    if status == 429 or status >= 500:
        return WebPushUnavailable(text, parse_retry_after(error.retry_after))
    return WebPushRefused(text)
