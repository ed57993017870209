"""A local stand-in for Firebase Cloud Messaging's HTTP v1 API and Google's OAuth 2.0
token endpoint, as a Starlette app.

It speaks the documented shapes:

* ``POST /token``: the JWT-bearer grant a service account uses
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``); the
  JWT's signature is checked against the keys of the service accounts the fake made
  (``service_account()``), its audience (Google's token endpoint) and its scope for
  FCM's. Answers ``{"access_token", "expires_in", "token_type": "Bearer"}``, or an
  OAuth error ``{"error": "invalid_grant", "error_description"}``.
* ``POST /v1/projects/{project}/messages:send`` with ``Authorization: Bearer`` one of
  those access tokens and ``{"message": {...}}`` (``validate_only`` allowed), to one
  ``token``: answers ``{"name": "projects/<project>/messages/<id>"}``; errors as
  ``{"error": {"code", "message", "status", "details"}}``: 401 UNAUTHENTICATED, 400
  INVALID_ARGUMENT (with a ``google.rpc.BadRequest`` naming the field, or an
  ``FcmError`` for a malformed registration token), 404 NOT_FOUND with FcmError
  ``UNREGISTERED`` for tokens in ``unregistered``.

Tests steer it with ``unregistered`` and ``fail_next`` (forced answers such as 503 or 429
with ``Retry-After``). Accepted messages are kept in ``messages`` and, when a folder is
given, written there as one JSON file each (like the Twilio fake and the mail sink).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.platform.http_server import serve_http

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google documents this as the assertion's audience, wherever the token is asked for.
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
TOKEN_LIFETIME_SECONDS = 3600
# The top-level fields of a Message (FCM v1 reference); exactly one target.
MESSAGE_FIELDS = frozenset(
    {"name", "data", "notification", "android", "webpush", "apns", "fcm_options"}
)
TARGETS = ("token", "topic", "condition")
_NOTIFICATION_FIELDS = frozenset({"title", "body", "image"})
# What FCM's registration tokens look like: URL-safe base64 with ':' and '-', long.
_REGISTRATION_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{20,4096}")


def fcm_error(
    code: int,
    status: str,
    message: str,
    *,
    error_code: str | None = None,
    field_violation: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error body as FCM's HTTP v1 API answers it."""
    details: list[dict[str, Any]] = []
    if error_code is not None:
        details.append({"@type": FCM_ERROR, "errorCode": error_code})
    if field_violation is not None:
        details.append(
            {
                "@type": BAD_REQUEST,
                "fieldViolations": [{"field": field_violation, "description": message}],
            }
        )
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, code, headers=headers)


def _invalid(message: str, field_name: str) -> JSONResponse:
    return fcm_error(400, "INVALID_ARGUMENT", message, field_violation=field_name)


@dataclass
class FakePush:
    """One message FCM accepted, as the fake keeps it."""

    name: str
    project: str
    token: str
    message: dict[str, Any]
    received_at: datetime
    path: Path | None = None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project": self.project,
            "received_at": self.received_at.isoformat(),
            "message": self.message,
        }


@dataclass(frozen=True)
class ForcedFcmAnswer:
    code: int
    status: str
    retry_after: int | None = None
    token: str | None = None  # None: whichever send comes next


@dataclass
class ServiceAccount:
    """A service account's JSON key (what ``AFTERCARE_FCM_SERVICE_ACCOUNT`` holds)."""

    info: dict[str, Any] = field(repr=False)

    def to_json(self) -> str:
        return json.dumps(self.info)


class FcmFake:
    """State and behaviour of the fake; ``app`` is the ASGI application to serve."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        unregistered: Iterable[str] = (),
        project_id: str = "aftercare-dev",
    ) -> None:
        self.folder = folder
        self.project_id = project_id
        self.unregistered: set[str] = set(unregistered)
        self.messages: list[FakePush] = []
        self.token_requests = 0
        self.refused: list[dict[str, Any]] = []
        self._public_keys: dict[str, str] = {}
        self._access_tokens: set[str] = set()
        self._forced: deque[ForcedFcmAnswer] = deque()
        self._changed = asyncio.Condition()
        self._counter = itertools.count()
        self._address: tuple[str, int] | None = None
        self.app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            ]
        )

    # -- set-up and steering ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise RuntimeError("the fake is not being served (use serve_fcm_fake)")
        return f"http://{self._address[0]}:{self._address[1]}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def service_account(self) -> ServiceAccount:
        """A new service account of the project whose tokens this fake grants: a fresh
        RSA key, its ``token_uri`` pointing at this fake."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        key_id = uuid.uuid4().hex
        self._public_keys[key_id] = public_pem
        email = f"aftercare-push@{self.project_id}.iam.gserviceaccount.com"
        return ServiceAccount(
            {
                "type": "service_account",
                "project_id": self.project_id,
                "private_key_id": key_id,
                "private_key": private_pem,
                "client_email": email,
                "client_id": str(uuid.uuid4().int)[:21],
                "token_uri": self.token_uri,
            }
        )

    def fail_next(
        self, code: int = 503, *, retry_after: int | None = None, token: str | None = None
    ) -> None:
        """Answer the next messages:send (to ``token``, when given) with this error
        instead (one request each)."""
        status = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
        self._forced.append(ForcedFcmAnswer(code, status.get(code, "UNKNOWN"), retry_after, token))

    def _forced_for(self, token: str) -> ForcedFcmAnswer | None:
        for forced in self._forced:
            if forced.token in (None, token):
                self._forced.remove(forced)
                return forced
        return None

    async def wait_for(self, count: int, seconds: float = 30.0) -> list[FakePush]:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.messages) >= count), seconds
            )
            return list(self.messages)

    def _served_at(self, host: str, port: int) -> None:
        self._address = (host, port)

    # -- the token endpoint -------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        async with request.form() as form:
            grant_type, assertion = form.get("grant_type"), form.get("assertion")
        if grant_type != JWT_BEARER_GRANT:
            return _oauth_error("unsupported_grant_type", "Only the JWT-bearer grant is served.")
        if not isinstance(assertion, str) or not assertion:
            return _oauth_error("invalid_request", "Missing required parameter: assertion")
        try:
            header = jwt.decode_header(assertion)  # type: ignore[no-untyped-call]
            public_key = self._public_keys.get(str(header.get("kid")))
            if public_key is None:
                return _oauth_error("invalid_grant", "Invalid JWT Signature.")
            claims = jwt.decode(assertion, certs=public_key, audience=TOKEN_AUDIENCE)  # type: ignore[no-untyped-call]
        except (ValueError, auth_exceptions.GoogleAuthError) as err:
            return _oauth_error("invalid_grant", f"Invalid JWT: {err}")
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", "The JWT does not ask for FCM's scope.")
        access_token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._access_tokens.add(access_token)
        return JSONResponse(
            {
                "access_token": access_token,
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "token_type": "Bearer",
            }
        )

    # -- messages:send ------------------------------------------------------------------

    async def _send(self, request: Request) -> Response:
        answer = await self._judge(request)
        if isinstance(answer, FakePush):
            async with self._changed:
                self.messages.append(answer)
                self._changed.notify_all()
            self._write(answer)
            return JSONResponse({"name": answer.name})
        self.refused.append(json.loads(bytes(answer.body)))
        return answer

    async def _judge(self, request: Request) -> FakePush | JSONResponse:
        authorization = request.headers.get("authorization", "")
        bearer = authorization.removeprefix("Bearer ")
        if not authorization.startswith("Bearer ") or bearer not in self._access_tokens:
            return fcm_error(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential.",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        project = request.path_params["project"]
        if project != self.project_id:
            return fcm_error(
                403,
                "PERMISSION_DENIED",
                f"Permission denied on project {project}.",
                error_code="SENDER_ID_MISMATCH",
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _invalid("Invalid JSON payload received.", "")
        problem = _validate(body)
        if problem is not None:
            return problem
        message = body["message"]
        token = message["token"]
        forced = self._forced_for(token)
        if forced is not None:
            headers = {"Retry-After": str(forced.retry_after)} if forced.retry_after else None
            return fcm_error(
                forced.code,
                forced.status,
                "The service is currently unavailable.",
                error_code="QUOTA_EXCEEDED" if forced.code == 429 else forced.status,
                headers=headers,
            )
        if not _REGISTRATION_TOKEN.fullmatch(token):
            return fcm_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                error_code="INVALID_ARGUMENT",
            )
        if token in self.unregistered:
            return fcm_error(
                404, "NOT_FOUND", "Requested entity was not found.", error_code="UNREGISTERED"
            )
        name = f"projects/{project}/messages/0:{uuid.uuid4().int % 10**16}%{uuid.uuid4().hex[:16]}"
        return FakePush(
            name=name,
            project=project,
            token=token,
            message=message,
            received_at=datetime.now(UTC),
        )

    def _write(self, push: FakePush) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = f"{push.received_at:%Y%m%dT%H%M%S%f}-{next(self._counter):06d}"
        push.path = self.folder / f"{stamp}.json"
        partial = push.path.with_suffix(".part")
        partial.write_text(json.dumps(push.record(), indent=2, ensure_ascii=False) + "\n")
        os.replace(partial, push.path)


def _validate(body: object) -> JSONResponse | None:
    """The first thing FCM would refuse in a request body, or None."""
    if not isinstance(body, dict):
        return _invalid("Invalid JSON payload received. Expected an object.", "")
    unknown = sorted(set(body) - {"message", "validate_only"})
    if unknown:
        return _invalid(f'Invalid JSON payload received. Unknown name "{unknown[0]}"', unknown[0])
    message = body.get("message")
    if not isinstance(message, dict):
        return _invalid("Request contains an invalid argument.", "message")
    unknown = sorted(set(message) - MESSAGE_FIELDS - set(TARGETS))
    if unknown:
        return _invalid(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'message'",
            f"message.{unknown[0]}",
        )
    targets = [target for target in TARGETS if target in message]
    if len(targets) != 1:
        return _invalid("Exactly one of token, topic or condition is required.", "message")
    if targets != ["token"] or not isinstance(message["token"], str) or not message["token"]:
        return _invalid("The fake serves sends to one registration token.", "message.token")
    notification = message.get("notification", {})
    if not isinstance(notification, dict):
        return _invalid("Invalid value at 'message.notification'", "message.notification")
    for key, value in notification.items():
        if key not in _NOTIFICATION_FIELDS or not isinstance(value, str):
            return _invalid(
                f"Invalid value at 'message.notification.{key}'", f"message.notification.{key}"
            )
    data = message.get("data", {})
    if not isinstance(data, dict):
        return _invalid("Invalid value at 'message.data'", "message.data")
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            return _invalid(
                f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {value}",
                f"message.data[{index}].value",
            )
        if key in ("from", "gcm") or key.startswith("google"):
            return _invalid(f"Invalid data key {key!r}", f"message.data[{index}].key")
    return None


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, 400)


@contextlib.asynccontextmanager
async def serve_fcm_fake(
    host: str, port: int, folder: Path | None = None, **options: Any
) -> AsyncIterator[FcmFake]:
    """Serve a fake FCM (and token endpoint) over HTTP."""
    fake = FcmFake(folder, **options)
    async with serve_http(fake.app, host, port) as served:
        fake._served_at(served.host, served.port)
        yield fake


__all__ = ["FakePush", "FcmFake", "ServiceAccount", "fcm_error", "serve_fcm_fake"]
