"""The codec server the Temporal UI and CLI call, served for real over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from engine.platform.codec import AesGcmCodec, data_converter
from engine.platform.codec.keys import generate_keyring
from engine.platform.codec.server import LOGIN_MAX_BODY_BYTES, SESSION_COOKIE, build_codec_app
from engine.platform.http_server import serve_http
from tests.support.raw_http import chunked, raw_request

TOKEN = "codec-token-for-tests"
UI_ORIGIN = "http://127.0.0.1:8233"
EMAIL = "ottoline.brackwater@example.net"


@pytest.fixture
def codec() -> AesGcmCodec:
    return AesGcmCodec(generate_keyring())


@pytest.fixture
async def http(codec: AesGcmCodec) -> AsyncIterator[httpx.AsyncClient]:
    app = build_codec_app(codec, TOKEN, UI_ORIGIN)
    async with (
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        yield client


def _body(payloads: list[Payload]) -> dict[str, Any]:
    as_json: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
    return as_json


async def _encrypted(codec: AesGcmCodec) -> list[Payload]:
    [payload] = await data_converter(codec.keyring).encode([{"email": EMAIL}])
    return [payload]


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Namespace": "default"}


async def test_decode_with_the_token_returns_plaintext_payloads(
    http: httpx.AsyncClient, codec: AesGcmCodec
) -> None:
    body = _body(await _encrypted(codec))
    assert EMAIL not in json.dumps(body)

    response = await http.post("/decode", json=body, headers=_bearer())
    assert response.status_code == 200
    [payload] = response.json()["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(payload["data"])) == {"email": EMAIL}


async def test_decode_under_a_namespace_path(http: httpx.AsyncClient, codec: AesGcmCodec) -> None:
    response = await http.post(
        "/default/decode", json=_body(await _encrypted(codec)), headers=_bearer()
    )
    assert response.status_code == 200
    assert EMAIL in base64.b64decode(response.json()["payloads"][0]["data"]).decode()


async def test_encode_then_decode_round_trips(http: httpx.AsyncClient) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(EMAIL).encode())
    encoded = await http.post("/encode", json=_body([plain]), headers=_bearer())
    assert encoded.status_code == 200
    assert EMAIL not in encoded.text
    decoded = await http.post("/decode", json=encoded.json(), headers=_bearer())
    parsed = json_format.ParseDict(decoded.json(), Payloads())
    assert list(parsed.payloads) == [plain]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
async def test_without_the_right_token_the_answer_is_401(
    http: httpx.AsyncClient, codec: AesGcmCodec, headers: dict[str, str]
) -> None:
    for path in ("/decode", "/encode"):
        response = await http.post(path, json=_body(await _encrypted(codec)), headers=headers)
        assert response.status_code == 401
        assert EMAIL not in response.text


async def test_a_malformed_body_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/decode", content=b"{not json", headers=_bearer())
    assert response.status_code == 400


async def test_an_undecryptable_payload_is_a_400(http: httpx.AsyncClient) -> None:
    foreign = await AesGcmCodec(generate_keyring()).encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=b"1")]
    )
    response = await http.post("/decode", json=_body(foreign), headers=_bearer())
    assert response.status_code == 400
    assert "not in the keyring" in response.json()["error"]


async def test_preflight_from_the_ui_origin_is_allowed(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/decode",
        headers={
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-namespace",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-namespace"):
        assert header in allowed


async def test_preflight_from_another_origin_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/decode",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code >= 400
    assert "access-control-allow-origin" not in response.headers


async def test_responses_to_the_ui_carry_cors_headers(
    http: httpx.AsyncClient, codec: AesGcmCodec
) -> None:
    headers = {**_bearer(), "Origin": UI_ORIGIN}
    response = await http.post("/decode", json=_body(await _encrypted(codec)), headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN

    other = await http.post(
        "/decode",
        json=_body(await _encrypted(codec)),
        headers={**_bearer(), "Origin": "http://evil.example"},
    )
    assert "access-control-allow-origin" not in other.headers


async def test_a_browser_session_from_the_login_form(
    http: httpx.AsyncClient, codec: AesGcmCodec
) -> None:
    page = await http.get("/login")
    assert page.status_code == 200
    assert 'name="token"' in page.text

    wrong = await http.post("/login", data={"token": "nope"})
    assert wrong.status_code == 401
    assert SESSION_COOKIE not in wrong.cookies

    signed_in = await http.post("/login", data={"token": TOKEN})
    assert signed_in.status_code == 200
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert TOKEN not in cookie

    # The client now holds the cookie, as the browser would: no Authorization header.
    response = await http.post(
        "/decode", json=_body(await _encrypted(codec)), headers={"Origin": UI_ORIGIN}
    )
    assert response.status_code == 200
    assert EMAIL in base64.b64decode(response.json()["payloads"][0]["data"]).decode()

    http.cookies.set(SESSION_COOKIE, "forged")
    forged = await http.post("/decode", json=_body(await _encrypted(codec)))
    assert forged.status_code == 401


def test_an_empty_token_is_refused(codec: AesGcmCodec) -> None:
    with pytest.raises(ValueError, match="non-empty token"):
        build_codec_app(codec, "", UI_ORIGIN)


# --- the login form: a bounded body, a bounded rate ------------------------------------


async def test_an_oversized_login_is_refused_before_its_body_is_read(
    http: httpx.AsyncClient,
) -> None:
    base = str(http.base_url)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # Announced and never sent: only a server that does not wait for it can answer.
    announced = await raw_request(
        base, "POST", "/login", {**form, "Content-Length": str(LOGIN_MAX_BODY_BYTES + 1)}
    )
    # Streamed without a length, the right token first: refused, not signed in.
    body = f"token={TOKEN}&pad=".encode() + b"x" * LOGIN_MAX_BODY_BYTES
    streamed = await raw_request(
        base,
        "POST",
        "/login",
        {**form, "Transfer-Encoding": "chunked"},
        chunked(body[:100], body[100:], last=False),
    )
    assert (announced.status, streamed.status) == (413, 413)
    assert SESSION_COOKIE not in streamed.headers.get("set-cookie", "")
    # A real sign-in fits with room to spare.
    assert (await http.post("/login", data={"token": TOKEN})).status_code == 200


@asynccontextmanager
async def serve_codec(codec: AesGcmCodec, **guards: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = build_codec_app(codec, TOKEN, UI_ORIGIN, **guards)
    async with (
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False) as client,
    ):
        yield client


async def test_login_attempts_are_rate_limited_per_client(codec: AesGcmCodec) -> None:
    async with serve_codec(codec, login_rate_limit="3/minute") as client:
        for _ in range(3):
            assert (await client.post("/login", data={"token": "guess"})).status_code == 401
        # The fourth guess within the minute is not even looked at, right token or not.
        limited = await client.post("/login", data={"token": TOKEN})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")
        assert (await client.get("/login")).status_code == 429
        # Decoding is not a login: a holder of the token is not slowed down.
        response = await client.post(
            "/decode", json=_body(await _encrypted(codec)), headers=_bearer()
        )
        assert response.status_code == 200
        # Not a trusted proxy: a forwarded address changes nothing.
        spoofed = await client.post(
            "/login", data={"token": TOKEN}, headers={"X-Forwarded-For": "203.0.113.9"}
        )
        assert spoofed.status_code == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    codec: AesGcmCodec,
) -> None:
    async with serve_codec(
        codec, login_rate_limit="2/minute", trusted_proxies=["127.0.0.1", "10.0.0.0/8"]
    ) as client:

        def attempt(forwarded_for: str) -> Awaitable[httpx.Response]:
            return client.post(
                "/login", data={"token": "guess"}, headers={"X-Forwarded-For": forwarded_for}
            )

        assert [(await attempt("203.0.113.9")).status_code for _ in range(3)] == [401, 401, 429]
        # Another client behind the same proxy (through a second, inner proxy).
        assert (await attempt("198.51.100.7, 10.1.2.3")).status_code == 401
        # The first client, however many trusted proxies it came through.
        assert (await attempt("203.0.113.9, 10.1.2.3")).status_code == 429
        # A client cannot pose as another by prepending an address: the rightmost
        # untrusted one counts.
        assert (await attempt("192.0.2.1, 203.0.113.9")).status_code == 429
