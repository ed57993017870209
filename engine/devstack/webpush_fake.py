"""A local stand-in for a browser's push service (RFC 8030) and for the browser
itself, as a Starlette app.

As the push service, ``POST /push/{id}`` (a subscription's endpoint) takes a message
as RFC 8030, RFC 8291 and RFC 8292 describe it:

* ``TTL`` is required (a non-negative integer), ``Urgency`` optional (``very-low``,
  ``low``, ``normal``, ``high``), ``Content-Encoding: aes128gcm``, at most 4096 bytes.
* ``Authorization: vapid t=<JWT>, k=<public key>``: the JWT must be ES256-signed by
  ``k`` (an uncompressed P-256 point, base64url), its ``aud`` this service's origin,
  its ``exp`` in the future and no more than 24 hours ahead, its ``sub`` present;
  a subscription made with an ``applicationServerKey`` takes only that key.

It answers 201 Created with the message's URL in ``Location``; 400 for a malformed
request, 401 without ``Authorization``, 403 for a token it does not accept, 404 for an
unknown subscription, 410 Gone for one that expired (``expire``), 413 when too large.

As the browser, it mints subscriptions (``subscribe``, or ``POST /subscriptions``
with an optional ``{"applicationServerKey": ...}``, answering what
``PushSubscription.toJSON()`` gives), keeps each one's private key and auth secret,
decrypts what arrives and keeps the plaintext JSON in ``messages`` and, when a folder
is given, as one JSON file each (like the FCM fake). Tests steer it with ``expire`` and
``fail_next`` (forced answers such as 503 or 429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messaging.web_push_keys import b64url_decode, b64url_encode
from engine.platform.http_server import serve_http

MAX_PAYLOAD_BYTES = 4096
MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600
URGENCIES = frozenset({"very-low", "low", "normal", "high"})


@dataclass
class FakeSubscription:
    """One subscription as the browser holds it: its private key decrypts messages."""

    subscription_id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth_secret: bytes = field(repr=False)
    application_server_key: str | None = None
    expired: bool = False

    @property
    def p256dh(self) -> str:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url_encode(point)

    @property
    def auth(self) -> str:
        return b64url_encode(self.auth_secret)

    def to_json(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives the page."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }


@dataclass
class ReceivedWebPush:
    """One message the push service took and the browser decrypted."""

    message_id: str
    subscription_id: str
    ttl: int
    urgency: str
    claims: dict[str, Any]
    payload: Any
    received_at: datetime
    path: Path | None = None

    def record(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "subscription": self.subscription_id,
            "received_at": self.received_at.isoformat(),
            "ttl": self.ttl,
            "urgency": self.urgency,
            "vapid": self.claims,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class ForcedAnswer:
    status: int
    retry_after: int | None = None
    endpoint: str | None = None  # None: whichever message comes next


class Refusal(Exception):
    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class WebPushFake:
    """State and behaviour of the fake; ``app`` is the ASGI application to serve."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.subscriptions: dict[str, FakeSubscription] = {}
        self.messages: list[ReceivedWebPush] = []
        # (status, reason) of every message refused.
        self.refused: list[tuple[int, str]] = []
        self._forced: deque[ForcedAnswer] = deque()
        self._changed = asyncio.Condition()
        self._counter = itertools.count()
        self._address: tuple[str, int] | None = None
        # Called when a subscription is made or ends (the dev stack keeps them on disk).
        self.on_change: Callable[[], None] | None = None
        self.app = Starlette(
            routes=[
                Route("/subscriptions", self._subscribe, methods=["POST"]),
                Route("/subscriptions/{id}", self._unsubscribe, methods=["DELETE"]),
                Route("/push/{id}", self._push, methods=["POST"]),
            ]
        )

    # -- set-up and steering ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise RuntimeError("the fake is not being served (use serve_webpush_fake)")
        return f"http://{self._address[0]}:{self._address[1]}"

    def subscribe(self, application_server_key: str | None = None) -> FakeSubscription:
        """A new subscription, as a browser makes one: a fresh P-256 key pair and auth
        secret; with ``application_server_key``, only that VAPID key may push to it."""
        subscription = self.adopt(
            secrets.token_urlsafe(24),
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
            application_server_key,
        )
        self._changed_subscriptions()
        return subscription

    def adopt(
        self,
        subscription_id: str,
        private_key: ec.EllipticCurvePrivateKey,
        auth_secret: bytes,
        application_server_key: str | None = None,
        *,
        expired: bool = False,
    ) -> FakeSubscription:
        """Serve a subscription made earlier (the dev stack's, kept across restarts)."""
        subscription = FakeSubscription(
            subscription_id=subscription_id,
            endpoint=f"{self.base_url}/push/{subscription_id}",
            private_key=private_key,
            auth_secret=auth_secret,
            application_server_key=application_server_key,
            expired=expired,
        )
        self.subscriptions[subscription_id] = subscription
        return subscription

    def expire(self, endpoint: str) -> None:
        """From now on the subscription answers 410 Gone (the user revoked it)."""
        self._by_endpoint(endpoint).expired = True
        self._changed_subscriptions()

    def _changed_subscriptions(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def fail_next(
        self, status: int = 503, *, retry_after: int | None = None, endpoint: str | None = None
    ) -> None:
        """Answer the next message (to ``endpoint``, when given) with this status."""
        self._forced.append(ForcedAnswer(status, retry_after, endpoint))

    def to(self, endpoint: str) -> list[ReceivedWebPush]:
        """The messages the subscription at ``endpoint`` received."""
        subscription = self._by_endpoint(endpoint)
        return [m for m in self.messages if m.subscription_id == subscription.subscription_id]

    async def wait_for(self, count: int, seconds: float = 30.0) -> list[ReceivedWebPush]:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.messages) >= count), seconds
            )
            return list(self.messages)

    def _by_endpoint(self, endpoint: str) -> FakeSubscription:
        subscription_id = endpoint.rstrip("/").rpartition("/push/")[2]
        return self.subscriptions[subscription_id]

    def _served_at(self, host: str, port: int) -> None:
        self._address = (host, port)

    def _forced_for(self, endpoint: str) -> ForcedAnswer | None:
        for forced in self._forced:
            if forced.endpoint in (None, endpoint):
                self._forced.remove(forced)
                return forced
        return None

    # -- the browser's side -------------------------------------------------------------

    async def _subscribe(self, request: Request) -> Response:
        body = await request.body()
        key: object = None
        if body:
            try:
                options = json.loads(body)
            except ValueError:
                return JSONResponse({"error": "the body is not JSON"}, 400)
            key = options.get("applicationServerKey") if isinstance(options, dict) else None
        if key is not None and not (isinstance(key, str) and _public_key(key) is not None):
            return JSONResponse(
                {"error": "applicationServerKey must be a P-256 public key, base64url"}, 400
            )
        subscription = self.subscribe(key if isinstance(key, str) else None)
        return JSONResponse(subscription.to_json(), 201)

    async def _unsubscribe(self, request: Request) -> Response:
        subscription = self.subscriptions.get(request.path_params["id"])
        if subscription is None:
            return Response(status_code=404)
        subscription.expired = True
        self._changed_subscriptions()
        return Response(status_code=204)

    # -- the push service's side --------------------------------------------------------

    async def _push(self, request: Request) -> Response:
        try:
            received = await self._judge(request)
        except Refusal as refusal:
            self.refused.append((refusal.status, refusal.reason))
            return JSONResponse(
                {"code": refusal.status, "error": refusal.reason},
                refusal.status,
                headers=refusal.headers,
            )
        async with self._changed:
            self.messages.append(received)
            self._changed.notify_all()
        self._write(received)
        return Response(
            status_code=201,
            headers={"Location": f"{self.base_url}/messages/{received.message_id}"},
        )

    async def _judge(self, request: Request) -> ReceivedWebPush:
        subscription = self.subscriptions.get(request.path_params["id"])
        if subscription is None:
            raise Refusal(404, "no such subscription")
        if subscription.expired:
            raise Refusal(410, "the subscription has expired or was unsubscribed")
        forced = self._forced_for(subscription.endpoint)
        if forced is not None:
            headers = {"Retry-After": str(forced.retry_after)} if forced.retry_after else None
            raise Refusal(forced.status, "forced by the test", headers)
        claims = self._authorised(request, subscription)
        ttl_text = request.headers.get("ttl", "")
        if not ttl_text.isdigit():
            raise Refusal(400, "the TTL header is required (seconds, a non-negative integer)")
        urgency = request.headers.get("urgency", "normal")
        if urgency not in URGENCIES:
            raise Refusal(400, f"Urgency must be one of {sorted(URGENCIES)}")
        body = await request.body()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise Refusal(413, f"the payload exceeds {MAX_PAYLOAD_BYTES} bytes")
        payload: Any = None
        if body:
            if request.headers.get("content-encoding") != "aes128gcm":
                raise Refusal(400, "Content-Encoding must be aes128gcm")
            payload = _decrypted(body, subscription)
        return ReceivedWebPush(
            message_id=uuid.uuid4().hex,
            subscription_id=subscription.subscription_id,
            ttl=int(ttl_text),
            urgency=urgency,
            claims=claims,
            payload=payload,
            received_at=datetime.now(UTC),
        )

    def _authorised(self, request: Request, subscription: FakeSubscription) -> dict[str, Any]:
        """The VAPID token's claims (RFC 8292), or the refusal a push service gives."""
        authorization = request.headers.get("authorization", "")
        if not authorization:
            raise Refusal(401, "VAPID authorization required", {"WWW-Authenticate": "vapid"})
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise Refusal(400, "the Authorization scheme must be vapid")
        params: dict[str, str] = {}
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            params[name.strip()] = value.strip()
        token, key_text = params.get("t", ""), params.get("k", "")
        public_key = _public_key(key_text)
        if not token or public_key is None:
            raise Refusal(400, "vapid needs t (the JWT) and k (a P-256 public key)")
        if subscription.application_server_key not in (None, key_text.rstrip("=")):
            raise Refusal(403, "the key is not the one the subscription was made for")
        claims = _verified_claims(token, public_key)
        origin = self.base_url
        if claims.get("aud") != origin:
            raise Refusal(403, f"the token's aud must be {origin}")
        expiry = claims.get("exp")
        now = time.time()
        if not isinstance(expiry, int) or expiry <= now:
            raise Refusal(403, "the token has expired (or has no exp)")
        if expiry > now + MAX_TOKEN_LIFETIME_SECONDS:
            raise Refusal(403, "the token's exp is more than 24 hours ahead")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Refusal(403, "the token has no sub")
        return claims

    def _write(self, received: ReceivedWebPush) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = f"{received.received_at:%Y%m%dT%H%M%S%f}-{next(self._counter):06d}"
        received.path = self.folder / f"{stamp}.json"
        partial = received.path.with_suffix(".part")
        partial.write_text(json.dumps(received.record(), indent=2, ensure_ascii=False) + "\n")
        os.replace(partial, received.path)


def _public_key(text: str) -> ec.EllipticCurvePublicKey | None:
    raw = b64url_decode(text)
    if raw is None or len(raw) != 65:
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return None


def _verified_claims(token: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The claims of a JWT whose ES256 signature ``key`` made (RFC 7515, 7518)."""
    pieces = token.split(".")
    if len(pieces) != 3:
        raise Refusal(403, "the token is not a JWT")
    header_raw, claims_raw, signature = (b64url_decode(piece) for piece in pieces)
    if header_raw is None or claims_raw is None or signature is None or len(signature) != 64:
        raise Refusal(403, "the token is not a JWT")
    try:
        header, claims = json.loads(header_raw), json.loads(claims_raw)
    except ValueError:
        raise Refusal(403, "the token is not a JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise Refusal(403, "the token must be signed with ES256")
    if not isinstance(claims, dict):
        raise Refusal(403, "the token's claims are not an object")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, f"{pieces[0]}.{pieces[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refusal(403, "the token's signature does not match k") from None
    return claims


def _decrypted(body: bytes, subscription: FakeSubscription) -> Any:
    """The plaintext (JSON when it is JSON), as the browser's service worker sees it."""
    try:
        plaintext: bytes = http_ece.decrypt(
            body,
            private_key=subscription.private_key,
            auth_secret=subscription.auth_secret,
            version="aes128gcm",
        )
    except Exception as err:
        raise Refusal(400, f"the payload does not decrypt: {type(err).__name__}") from None
    text = plaintext.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


@contextlib.asynccontextmanager
async def serve_webpush_fake(
    host: str, port: int, folder: Path | None = None
) -> AsyncIterator[WebPushFake]:
    """Serve a fake push service over HTTP."""
    fake = WebPushFake(folder)
    async with serve_http(fake.app, host, port) as served:
        fake._served_at(served.host, served.port)
        yield fake


__all__ = [
    "FakeSubscription",
    "ReceivedWebPush",
    "WebPushFake",
    "serve_webpush_fake",
]
