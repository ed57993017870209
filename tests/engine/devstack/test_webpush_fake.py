"""The fake push service judges requests as RFC 8030 and RFC 8292 say a push service
does: every VAPID token is checked (ES256 signature by ``k``, ``aud``, ``exp``,
``sub``), TTL and the content coding are required; and, as the browser, it mints
subscriptions and decrypts what it accepts. Tokens here are signed by hand (not by
pywebpush), so the fake's check does not lean on the sender's code."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pywebpush import WebPusher

from engine.devstack.webpush_fake import FakeSubscription, WebPushFake, serve_webpush_fake
from engine.messaging.web_push_keys import b64url_encode
from engine.platform.vapid import public_key_of


@dataclass
class Rig:
    fake: WebPushFake
    http: httpx.AsyncClient


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with (
        serve_webpush_fake("127.0.0.1", 0, tmp_path / "webpush") as fake,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        yield Rig(fake, http)


def jwt(key: ec.EllipticCurvePrivateKey, claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return b64url_encode(json.dumps(value).encode())

    signing_input = f"{part({'typ': 'JWT', 'alg': 'ES256'})}.{part(claims)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def claims_for(fake: WebPushFake, **changes: Any) -> dict[str, Any]:
    claims = {"aud": fake.base_url, "exp": int(time.time()) + 3600, "sub": "mailto:o@shop.test"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def encrypted(subscription: FakeSubscription, payload: dict[str, Any]) -> bytes:
    pusher = WebPusher(subscription.to_json())
    body: bytes = pusher.encode(json.dumps(payload).encode(), "aes128gcm")["body"]
    return body


async def push(
    rig: Rig,
    subscription: FakeSubscription,
    *,
    signer: ec.EllipticCurvePrivateKey | None = None,
    k: ec.EllipticCurvePrivateKey | None = None,
    claims: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    authorization: str | None = None,
) -> httpx.Response:
    signer = signer or ec.generate_private_key(ec.SECP256R1())
    token = jwt(signer, claims if claims is not None else claims_for(rig.fake))
    sent = {
        "TTL": "60",
        "Content-Encoding": "aes128gcm",
        "Authorization": authorization
        if authorization is not None
        else f"vapid t={token}, k={public_key_of(k or signer)}",
        **(headers or {}),
    }
    return await rig.http.post(
        subscription.endpoint,
        content=encrypted(subscription, {"title": "Hi", "body": "There", "url": ""}),
        headers={name: value for name, value in sent.items() if value},
    )


async def test_a_well_signed_message_is_accepted_decrypted_and_kept_as_a_file(rig: Rig) -> None:
    subscription = rig.fake.subscribe()
    answer = await push(rig, subscription, headers={"Urgency": "high"})
    assert answer.status_code == 201
    assert answer.headers["Location"].startswith(f"{rig.fake.base_url}/messages/")
    [received] = rig.fake.messages
    assert received.payload == {"title": "Hi", "body": "There", "url": ""}
    assert (received.ttl, received.urgency) == (60, "high")
    assert received.path is not None
    kept = json.loads(received.path.read_text())
    assert kept["payload"]["title"] == "Hi"
    assert kept["vapid"]["sub"] == "mailto:o@shop.test"


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("signed by another key than k", 403),
        ("aud of another origin", 403),
        ("expired", 403),
        ("exp more than a day ahead", 403),
        ("no sub", 403),
        ("no Authorization", 401),
        ("another scheme", 400),
        ("no TTL", 400),
        ("another content coding", 400),
    ],
)
async def test_what_a_push_service_refuses_is_refused(rig: Rig, case: str, status: int) -> None:
    subscription = rig.fake.subscribe()
    fake = rig.fake
    cases: dict[str, dict[str, Any]] = {
        "signed by another key than k": {"k": ec.generate_private_key(ec.SECP256R1())},
        "aud of another origin": {"claims": claims_for(fake, aud="https://push.example")},
        "expired": {"claims": claims_for(fake, exp=int(time.time()) - 10)},
        "exp more than a day ahead": {"claims": claims_for(fake, exp=int(time.time()) + 25 * 3600)},
        "no sub": {"claims": claims_for(fake, sub=None)},
        "no Authorization": {"authorization": ""},
        "another scheme": {"authorization": "Bearer abc"},
        "no TTL": {"headers": {"TTL": ""}},
        "another content coding": {"headers": {"Content-Encoding": "aesgcm"}},
    }
    answer = await push(rig, subscription, **cases[case])
    assert answer.status_code == status, answer.text
    assert [code for code, _ in fake.refused] == [status]
    assert not fake.messages


async def test_a_restricted_subscription_takes_only_its_application_server_key(
    rig: Rig,
) -> None:
    ours = ec.generate_private_key(ec.SECP256R1())
    subscription = rig.fake.subscribe(application_server_key=public_key_of(ours))
    refused = await push(rig, subscription)  # a stranger's key, however well signed
    accepted = await push(rig, subscription, signer=ours)
    assert (refused.status_code, accepted.status_code) == (403, 201)


async def test_subscriptions_are_minted_over_http_and_an_unsubscribed_one_is_gone(
    rig: Rig,
) -> None:
    made = await rig.http.post(f"{rig.fake.base_url}/subscriptions")
    assert made.status_code == 201
    shown = made.json()
    assert shown["endpoint"].startswith(f"{rig.fake.base_url}/push/")
    assert set(shown["keys"]) == {"p256dh", "auth"}
    subscription = rig.fake.subscriptions[shown["endpoint"].rpartition("/")[2]]
    assert (await push(rig, subscription)).status_code == 201

    deleted = await rig.http.delete(
        f"{rig.fake.base_url}/subscriptions/{subscription.subscription_id}"
    )
    assert deleted.status_code == 204
    assert (await push(rig, subscription)).status_code == 410
