"""The web push sender against the local fake push service over real HTTP and real
crypto: pywebpush encrypts to a subscription the fake minted as a browser would,
signs a VAPID token the fake verifies, and the fake decrypts what arrived."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from activities.push.fcm import PushNotification
from activities.push.webpush import (
    TTL_SECONDS,
    WebPushConfig,
    WebPushGone,
    WebPushRefused,
    WebPushSender,
    WebPushUnavailable,
)
from engine.devstack.webpush_fake import FakeSubscription, WebPushFake, serve_webpush_fake
from engine.messaging.web_push_keys import WebPushKeys
from engine.platform.vapid import load_private_key, new_private_key_pem, public_key_of

NOTE = PushNotification(
    title="On its way",
    body="Order A-1 shipped.",
    link="https://shop.example/o/A-1",
    data={"journey_id": "order-A-1", "step": "shipping_notice"},
)
SUBJECT = "mailto:ops@shop.example"


@dataclass
class Rig:
    fake: WebPushFake
    sender: WebPushSender


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with serve_webpush_fake("127.0.0.1", 0) as fake:
        sender = WebPushSender(WebPushConfig(new_private_key_pem(), SUBJECT))
        try:
            yield Rig(fake, sender)
        finally:
            await sender.aclose()


def keys_of(subscription: FakeSubscription) -> WebPushKeys:
    return WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth)


async def send(rig: Rig, subscription: FakeSubscription, *, urgent: bool = True) -> str:
    return await rig.sender.send(subscription.endpoint, keys_of(subscription), NOTE, urgent=urgent)


async def test_the_browser_decrypts_title_body_and_link_under_a_verified_vapid_token(
    rig: Rig,
) -> None:
    subscription = rig.fake.subscribe(application_server_key=rig.sender.public_key)
    location = await send(rig, subscription)
    again = await send(rig, subscription, urgent=False)
    assert location.startswith(f"{rig.fake.base_url}/messages/")
    assert again != location
    first, second = rig.fake.to(subscription.endpoint)
    assert first.payload == {
        "title": "On its way",
        "body": "Order A-1 shipped.",
        "url": "https://shop.example/o/A-1",
        "data": {"journey_id": "order-A-1", "step": "shipping_notice"},
    }
    assert (first.ttl, first.urgency) == (TTL_SECONDS, "high")
    assert second.urgency == "normal"
    # The token the fake verified: for its origin, from us, expiring within the day.
    assert first.claims["aud"] == rig.fake.base_url
    assert first.claims["sub"] == SUBJECT
    assert time.time() < first.claims["exp"] <= time.time() + 24 * 3600


async def test_a_raw_base64url_key_signs_as_its_pem_would(rig: Rig) -> None:
    pem = new_private_key_pem()
    scalar = load_private_key(pem).private_numbers().private_value.to_bytes(32, "big")
    raw = base64.urlsafe_b64encode(scalar).rstrip(b"=").decode()
    sender = WebPushSender(WebPushConfig(raw, SUBJECT))
    try:
        assert sender.public_key == public_key_of(load_private_key(pem))
        subscription = rig.fake.subscribe(application_server_key=sender.public_key)
        await sender.send(subscription.endpoint, keys_of(subscription), NOTE, urgent=True)
    finally:
        await sender.aclose()
    assert len(rig.fake.to(subscription.endpoint)) == 1


async def test_an_expired_or_unknown_subscription_is_gone(rig: Rig) -> None:
    subscription = rig.fake.subscribe()
    rig.fake.expire(subscription.endpoint)
    with pytest.raises(WebPushGone, match="410"):
        await send(rig, subscription)
    unknown = rig.fake.subscribe()
    del rig.fake.subscriptions[unknown.subscription_id]
    with pytest.raises(WebPushGone, match="404"):
        await send(rig, unknown)
    assert not rig.fake.messages


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_outages_are_retried_after_what_the_service_asks(
    rig: Rig, status: int
) -> None:
    subscription = rig.fake.subscribe()
    rig.fake.fail_next(status, retry_after=7)
    with pytest.raises(WebPushUnavailable) as failure:
        await send(rig, subscription)
    assert failure.value.retry_after_seconds == 7
    assert not failure.value.maybe_delivered
    await send(rig, subscription)  # the next attempt goes through
    assert len(rig.fake.messages) == 1


async def test_a_subscription_made_for_another_vapid_key_is_refused_with_403(rig: Rig) -> None:
    other_key = public_key_of(load_private_key(new_private_key_pem()))
    subscription = rig.fake.subscribe(application_server_key=other_key)
    with pytest.raises(WebPushRefused, match="403"):
        await send(rig, subscription)
    assert rig.fake.refused == [(403, "the key is not the one the subscription was made for")]
    assert not rig.fake.messages


async def test_an_unreachable_push_service_is_retried(rig: Rig) -> None:
    subscription = rig.fake.subscribe()
    endpoint = "http://127.0.0.1:9/push/nobody-listens"
    with pytest.raises(WebPushUnavailable, match="cannot reach"):
        await rig.sender.send(endpoint, keys_of(subscription), NOTE, urgent=True)
