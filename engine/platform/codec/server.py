"""The codec server: decrypts payloads for the Temporal UI and CLI, for ops only.

It speaks Temporal's codec-server protocol: ``POST .../encode`` and
``POST .../decode`` take and return ``{"payloads": [...]}``, the protobuf JSON form
of ``temporal.api.common.v1.Payloads``; only the last path segment counts, so
``/{namespace}/decode`` works too. The Temporal UI calls it from the browser, so
CORS admits exactly the UI's origin (with credentials).

Every call needs the codec token (``AFTERCARE_CODEC_TOKEN``), given one of two ways:

* ``Authorization: Bearer <token>``: for the CLI, e.g.
  ``temporal workflow show -w order-123 --codec-endpoint http://127.0.0.1:8234
  --codec-auth "Bearer <token>"``, and for scripts.
* a session cookie, for the browser. The Temporal UI adds an ``Authorization``
  header only with its "pass access token" option, and then sends the user's
  OIDC access token of a UI with login configured, and only to an https
  endpoint; the dev UI (``temporal server start-dev``) has no login, so there is
  no token to pass. Instead an operator opens ``<codec server>/login`` once, enters
  the token, and gets an HttpOnly ``SameSite=Strict`` cookie; then, in the UI's
  codec-server settings (the "Codec Server" button in the UI), ticks "Include
  cross-origin credentials" so the UI's calls carry it. Serve UI and codec server
  from the same host name (``127.0.0.1`` for both, or ``localhost`` for both):
  the cookie is then same-site; the ports may differ.

Without the token the server answers 401, so someone who can open the UI but does
not have the token sees only ciphertext.

The login form is the one part open to anyone: its body is capped
(:data:`LOGIN_MAX_BODY_BYTES`, 413 before it is read) and each client gets so many
tries (``AFTERCARE_CODEC_LOGIN_RATE_LIMIT``, 10 a minute by default; then 429
with Retry-After), counted by address as ``engine.platform.http_limits``
describes (behind a proxy: the proxy's, unless it is in
``AFTERCARE_TRUSTED_PROXIES``). The payload endpoints cap their bodies too.

A payload it cannot decode (altered, or of an erased customer, whose data key was
destroyed: see :mod:`engine.platform.codec.customer_codec`) gets a 400 whose ``error`` says
why, e.g. "data key destroyed (customer erased): ...", which the UI shows in place of
the payload; the batch it came in is refused whole, so nothing is half-answered.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qs

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from engine.platform.http_limits import RateLimit, Throttled, trusting_proxies

SESSION_COOKIE = "aftercare_codec_session"
SESSION_SECONDS = 8 * 3600
# Generous (a batch of history payloads), but a bound on what one call may make us hold.
MAX_BODY_BYTES = 16 * 1024 * 1024
# The form is one token field: a few hundred bytes at most.
LOGIN_MAX_BODY_BYTES = 4096
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Namespace"]

_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Aftercare codec server</title></head>
<body>
<h1>Aftercare codec server</h1>
<p>{message}</p>
<form method="post" action="login">
<label>Codec token <input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button>
</form>
</body></html>
"""


def _session_value(token: str) -> str:
    # The cookie holds a value derived from the token, never the token itself.
    return hmac.new(token.encode("utf-8"), b"aftercare codec session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def build_codec_app(
    codec: PayloadCodec,
    token: str,
    ui_origin: str,
    *,
    login_rate_limit: str = "10/minute",
    trusted_proxies: Sequence[str] = (),
) -> Starlette:
    """The codec server for ``codec``, open to holders of ``token``, callable from
    pages of ``ui_origin`` (e.g. ``http://127.0.0.1:8233``). ``login_rate_limit``
    (tries per client) and ``trusted_proxies`` are the settings
    ``codec_login_rate_limit`` and ``trusted_proxies``."""
    if not token:
        raise ValueError("the codec server needs a non-empty token")
    session = _session_value(token)
    # Showing the form and posting it share one budget per client.
    login_limit = [Middleware(Throttled, limit=RateLimit(login_rate_limit, "codec login"))]

    def authorized(request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _same(credentials.strip(), token):
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and _same(cookie, session)

    def payload_endpoint(
        convert: Callable[[Payloads], Awaitable[None]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return JSONResponse(
                    {"error": "codec token required"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="aftercare-codec"'},
                )
            body = await request.body()  # capped by the route (MAX_BODY_BYTES)
            payloads = Payloads()
            try:
                json_format.Parse(body, payloads)
            except (json_format.ParseError, UnicodeDecodeError) as err:
                return JSONResponse({"error": f"not a Payloads JSON: {err}"}, status_code=400)
            try:
                await convert(payloads)
            except ValueError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            return Response(json_format.MessageToJson(payloads), media_type="application/json")

        return endpoint

    async def login_page(request: Request) -> Response:
        return HTMLResponse(_LOGIN_PAGE.format(message="Enter the codec token to read journeys."))

    async def login(request: Request) -> Response:
        body = await request.body()  # capped by the route (LOGIN_MAX_BODY_BYTES)
        fields = parse_qs(body.decode("utf-8", errors="replace"))
        given = (fields.get("token") or [""])[0]
        if not _same(given, token):
            return HTMLResponse(
                _LOGIN_PAGE.format(message=html.escape("Wrong token.")), status_code=401
            )
        response = HTMLResponse(
            "<!doctype html><p>Signed in. In the Temporal UI's codec server settings, "
            "tick “Include cross-origin credentials”.</p>"
        )
        response.set_cookie(
            SESSION_COOKIE,
            session,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        response = HTMLResponse("<!doctype html><p>Signed out.</p>")
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    encode = payload_endpoint(codec.encode_wrapper)
    decode = payload_endpoint(codec.decode_wrapper)
    return Starlette(
        routes=[
            Route("/encode", encode, methods=["POST"], max_body_size=MAX_BODY_BYTES),
            Route("/decode", decode, methods=["POST"], max_body_size=MAX_BODY_BYTES),
            Route("/{prefix:path}/encode", encode, methods=["POST"], max_body_size=MAX_BODY_BYTES),
            Route("/{prefix:path}/decode", decode, methods=["POST"], max_body_size=MAX_BODY_BYTES),
            Route("/login", login_page, methods=["GET"], middleware=login_limit),
            Route(
                "/login",
                login,
                methods=["POST"],
                middleware=login_limit,
                max_body_size=LOGIN_MAX_BODY_BYTES,
            ),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[
            *trusting_proxies(trusted_proxies),
            Middleware(
                CORSMiddleware,
                allow_origins=[ui_origin.rstrip("/")],
                allow_methods=["POST"],
                allow_headers=ALLOWED_HEADERS,
                allow_credentials=True,
                max_age=600,
            ),
        ],
    )
