"""The FCM sender against the local fake over real HTTP: google-auth's JWT-bearer grant
at the fake's token endpoint, then messages:send in FCM's documented shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from activities.push.fcm import (
    FcmConfig,
    FcmRefused,
    FcmSender,
    FcmTokenGone,
    FcmUnavailable,
    PushNotification,
)
from engine.devstack.fcm_fake import FcmFake, serve_fcm_fake

TOKEN = "fGx1:APA91bH-device-token-for-tests_0001"
NOTE = PushNotification(title="On its way", body="Order A-1 shipped.", link="https://shop/o/A-1")


@pytest.fixture
async def fcm() -> AsyncIterator[tuple[FcmFake, FcmSender]]:
    async with serve_fcm_fake("127.0.0.1", 0) as fake:
        account = fake.service_account()
        sender = FcmSender(FcmConfig(fake.project_id, account.info, api_base_url=fake.base_url))
        yield fake, sender
        await sender.aclose()


async def test_a_notification_reaches_the_device_token_with_title_body_and_link(
    fcm: tuple[FcmFake, FcmSender],
) -> None:
    fake, sender = fcm
    name = await sender.send(TOKEN, NOTE)
    second = await sender.send(TOKEN, NOTE)
    assert name.startswith(f"projects/{fake.project_id}/messages/")
    assert second != name
    [first, _] = fake.messages
    assert first.token == TOKEN
    assert first.message["notification"] == {"title": "On its way", "body": "Order A-1 shipped."}
    assert first.message["data"]["link"] == "https://shop/o/A-1"
    # One access token served both sends: google-auth refreshes only when it expires.
    assert fake.token_requests == 1


async def test_an_unregistered_token_is_reported_as_gone(
    fcm: tuple[FcmFake, FcmSender],
) -> None:
    fake, sender = fcm
    fake.unregistered.add(TOKEN)
    with pytest.raises(FcmTokenGone, match="UNREGISTERED"):
        await sender.send(TOKEN, NOTE)
    assert fake.refused[0]["error"]["status"] == "NOT_FOUND"


async def test_a_malformed_token_is_refused_for_good(fcm: tuple[FcmFake, FcmSender]) -> None:
    _, sender = fcm
    with pytest.raises(FcmRefused, match="INVALID_ARGUMENT"):
        await sender.send("not a token", NOTE)


@pytest.mark.parametrize("code", [429, 503])
async def test_overload_is_transient_with_the_retry_after_fcm_gave(
    fcm: tuple[FcmFake, FcmSender], code: int
) -> None:
    fake, sender = fcm
    fake.fail_next(code, retry_after=7)
    with pytest.raises(FcmUnavailable) as failure:
        await sender.send(TOKEN, NOTE)
    assert failure.value.retry_after_seconds == 7
    assert not failure.value.maybe_delivered
    assert await sender.send(TOKEN, NOTE)  # then it goes


async def test_a_service_account_the_fake_does_not_know_gets_no_token() -> None:
    async with serve_fcm_fake("127.0.0.1", 0) as fake, serve_fcm_fake("127.0.0.1", 0) as other:
        stranger = other.service_account().info | {"token_uri": fake.token_uri}
        sender = FcmSender(FcmConfig(fake.project_id, stranger, api_base_url=fake.base_url))
        try:
            with pytest.raises(FcmUnavailable, match="no FCM access token"):
                await sender.send(TOKEN, NOTE)
        finally:
            await sender.aclose()
    assert fake.messages == []
